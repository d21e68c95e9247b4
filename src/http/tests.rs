//! Protocol tests: parsing, framing, limits, errors and exact serialization.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";

fn small_limits() -> Limits {
    Limits {
        max_header_bytes: 256,
        max_body_bytes: 32,
        max_headers: 8,
    }
}

/// Parses `input` as exactly one complete request.
fn parse_one(input: &[u8]) -> Request {
    let mut p = RequestParser::default();
    match p.parse(input) {
        Ok(ParseStatus::Complete { request, consumed }) => {
            assert_eq!(consumed, input.len(), "request did not use the whole input");
            request
        }
        other => panic!("expected a complete request, got {other:?}"),
    }
}

fn parse_err(limits: Limits, input: &[u8]) -> HttpError {
    let mut p = RequestParser::new(limits);
    match p.parse(input) {
        Err(e) => e,
        Ok(status) => panic!("expected an error, got {status:?}"),
    }
}

/// Feeds `input` in pieces of `step` bytes through a `ConnBuffer`, as the worker feeds
/// each read, collecting requests.
fn feed(limits: Limits, input: &[u8], step: usize) -> Result<Vec<Request>, HttpError> {
    let mut conn = ConnBuffer::new(limits);
    let mut out = Vec::new();
    for piece in input.chunks(step) {
        conn.feed(piece);
        while let Some(req) = conn.next_request()? {
            out.push(req);
        }
    }
    Ok(out)
}

fn serialize(resp: &Response, meta: ResponseMeta<'_>) -> (String, bool) {
    let mut out = Vec::new();
    let keep = resp.write_to(&mut out, meta);
    (String::from_utf8(out).unwrap(), keep)
}

#[test]
fn simple_get() {
    let req = parse_one(GET);
    assert_eq!(req.method(), "GET");
    assert_eq!(req.target(), "/");
    assert_eq!(req.path(), "/");
    assert_eq!(req.query(), None);
    assert_eq!(req.version(), 1);
    assert_eq!(req.header("host"), Some(&b"localhost"[..]));
    assert_eq!(req.header("HOST"), Some(&b"localhost"[..]));
    assert_eq!(req.header("x-missing"), None);
    assert!(req.body().is_empty());
    assert!(req.keep_alive());
    let names: Vec<&str> = req.headers().map(|(n, _)| n).collect();
    assert_eq!(names, ["Host"]);
}

#[test]
fn keep_alive_rules() {
    let cases: &[(&[u8], bool)] = &[
        (b"GET / HTTP/1.1\r\n\r\n", true),
        (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false),
        (
            b"GET / HTTP/1.1\r\nConnection: Upgrade, CLOSE\r\n\r\n",
            false,
        ),
        (b"GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n", true),
        (b"GET / HTTP/1.0\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
        (b"GET / HTTP/1.0\r\nconnection: Keep-Alive\r\n\r\n", true),
        (
            b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
            false,
        ),
    ];
    for (input, expected) in cases {
        let req = parse_one(input);
        assert_eq!(
            req.keep_alive(),
            *expected,
            "{}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn pipelined_requests_in_one_buffer() {
    let input = b"GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyzGET /c?q=1 HTTP/1.1\r\n\r\n";
    let mut p = RequestParser::default();
    let mut rest: &[u8] = input;
    let mut paths = Vec::new();
    while !rest.is_empty() {
        match p.parse(rest).unwrap() {
            ParseStatus::Complete { request, consumed } => {
                paths.push((request.path().to_owned(), request.body().to_vec()));
                rest = &rest[consumed..];
            }
            ParseStatus::Partial { .. } => panic!("pipelined input is complete"),
        }
    }
    assert_eq!(
        paths,
        [
            ("/a".to_owned(), vec![]),
            ("/b".to_owned(), b"xyz".to_vec()),
            ("/c".to_owned(), vec![])
        ]
    );
}

#[test]
fn byte_by_byte_feeding_matches_whole_feeding() {
    let input: &[u8] = b"POST /upload?name=a%20b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\nGET /next HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi";
    let whole = feed(Limits::default(), input, input.len()).unwrap();
    for step in [1, 2, 3, 7, 13] {
        let pieces = feed(Limits::default(), input, step).unwrap();
        assert_eq!(pieces.len(), 2, "step {step}");
        for (a, b) in whole.iter().zip(&pieces) {
            assert_eq!(a.target(), b.target(), "step {step}");
            assert_eq!(a.body(), b.body(), "step {step}");
        }
    }
    assert_eq!(whole[0].body(), b"abcde");
    assert_eq!(whole[0].query_param("name").as_deref(), Some("a b"));
    assert_eq!(whole[1].path(), "/next");
    assert_eq!(whole[1].body(), b"hi");
}

#[test]
fn head_split_at_every_boundary() {
    for cut in 0..=GET.len() {
        let mut p = RequestParser::default();
        let (a, _) = GET.split_at(cut);
        if cut < GET.len() {
            match p.parse(a).unwrap() {
                ParseStatus::Partial { consumed } => assert_eq!(consumed, 0),
                ParseStatus::Complete { .. } => panic!("complete at cut {cut}"),
            }
        }
        match p.parse(GET).unwrap() {
            ParseStatus::Complete { request, consumed } => {
                assert_eq!(consumed, GET.len());
                assert_eq!(request.header("host"), Some(&b"localhost"[..]));
            }
            ParseStatus::Partial { .. } => panic!("partial at cut {cut}"),
        }
    }
}

#[test]
fn content_length_body_across_reads() {
    let mut p = RequestParser::default();
    let head = b"PUT /x HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123";
    match p.parse(head).unwrap() {
        ParseStatus::Partial { consumed } => assert_eq!(consumed, head.len()),
        other => panic!("{other:?}"),
    }
    assert!(!p.is_between_requests());
    match p.parse(b"456").unwrap() {
        ParseStatus::Partial { consumed } => assert_eq!(consumed, 3),
        other => panic!("{other:?}"),
    }
    match p.parse(b"789GET").unwrap() {
        ParseStatus::Complete { request, consumed } => {
            assert_eq!(consumed, 3);
            assert_eq!(request.body(), b"0123456789");
            assert_eq!(request.method(), "PUT");
        }
        other => panic!("{other:?}"),
    }
    assert!(p.is_between_requests());
}

#[test]
fn chunked_body_with_extensions_and_trailers() {
    let req = parse_one(
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
          5 ; name=\"quoted;value\"\r\nhello\r\n\
          A\r\n, world!!!\r\n\
          000\r\nExpires: never\r\nX-Other: 1\r\n\r\n",
    );
    assert_eq!(req.body(), b"hello, world!!!");
    // Trailers are discarded, not merged into the header fields.
    assert_eq!(req.header("expires"), None);
}

#[test]
fn chunked_split_across_reads_consumes_incrementally() {
    let mut p = RequestParser::default();
    let parts: [&[u8]; 5] = [
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r",
        b"\nab",
        b"cd\r\n0\r",
        b"\n\r",
        b"\nNEXT",
    ];
    for part in &parts[..4] {
        match p.parse(part).unwrap() {
            ParseStatus::Partial { consumed } => assert_eq!(consumed, part.len()),
            other => panic!("{other:?}"),
        }
    }
    match p.parse(parts[4]).unwrap() {
        ParseStatus::Complete { request, consumed } => {
            assert_eq!(consumed, 1);
            assert_eq!(request.body(), b"abcd");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn header_section_over_limit_is_431() {
    let mut big = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
    big.resize(big.len() + 300, b'a');
    big.extend_from_slice(b"\r\n\r\n");
    assert_eq!(parse_err(small_limits(), &big).status(), 431);
    // Without the end of the head in sight: refused as soon as the limit is passed.
    let partial = &big[..big.len() - 4];
    assert_eq!(parse_err(small_limits(), partial).status(), 431);
    // Too many header fields.
    let mut many = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..9 {
        many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let err = parse_err(small_limits(), &many);
    assert_eq!(err, HttpError::TooManyHeaders { limit: 8 });
    assert_eq!(err.status(), 431);
    // Trailers count against the header limit too.
    let mut trailer = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: ".to_vec();
    trailer.resize(trailer.len() + 300, b't');
    assert_eq!(parse_err(small_limits(), &trailer).status(), 431);
}

#[test]
fn head_at_limit_is_accepted() {
    let limits = small_limits();
    let mut head = b"GET / HTTP/1.1\r\nX: ".to_vec();
    let fill = limits.max_header_bytes - head.len() - 4;
    head.resize(head.len() + fill, b'a');
    head.extend_from_slice(b"\r\n\r\n");
    assert_eq!(head.len(), limits.max_header_bytes);
    let reqs = feed(limits, &head, 1).unwrap();
    assert_eq!(reqs.len(), 1);
}

#[test]
fn body_over_limit_is_413() {
    // Decided from Content-Length before any body byte.
    let err = parse_err(
        small_limits(),
        b"POST / HTTP/1.1\r\nContent-Length: 33\r\n\r\n",
    );
    assert_eq!(
        err,
        HttpError::BodyTooLarge {
            length: 33,
            limit: 32
        }
    );
    assert_eq!(err.status(), 413);
    // Exactly at the limit is fine.
    let mut ok = b"POST / HTTP/1.1\r\nContent-Length: 32\r\n\r\n".to_vec();
    ok.extend_from_slice(&[b'x'; 32]);
    assert_eq!(feed(small_limits(), &ok, 5).unwrap()[0].body().len(), 32);
    // Chunked: refused at the chunk whose size crosses the limit.
    let err = parse_err(
        small_limits(),
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n11\r\n",
    );
    assert_eq!(err.status(), 413);
    // A huge chunk size is refused without waiting for the data.
    let err = parse_err(
        small_limits(),
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffff",
    );
    assert_eq!(err.status(), 413);
}

#[test]
fn bad_requests_are_400() {
    let cases: &[&[u8]] = &[
        b"GET\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\n\r\n",
        b"G(T / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/3.0\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"\x00\x01\x02\x03",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5x\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000001\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: -3\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: \r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ];
    for input in cases {
        let err = parse_err(Limits::default(), input);
        assert_eq!(
            err.status(),
            400,
            "{:?}: {err}",
            String::from_utf8_lossy(input)
        );
    }
    let err = parse_err(
        Limits::default(),
        b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    );
    assert_eq!(err.status(), 501);
}

#[test]
fn garbage_is_refused_before_the_head_limit() {
    // No CRLFCRLF anywhere: must not wait for 8 KiB of it.
    for input in [
        &b"\x16\x03\x01"[..],
        b"PRI * HTTP/2.0\r\n",
        b"GET / FTP/1.0\r\n",
    ] {
        let mut conn = ConnBuffer::new(Limits::default());
        let space = conn.spare();
        space[..input.len()].copy_from_slice(input);
        conn.filled(input.len());
        let err = conn.next_request().unwrap_err();
        assert_eq!(err.status(), 400, "{input:?}");
    }
}

#[test]
fn identical_duplicate_content_length_is_accepted() {
    let req = parse_one(b"POST / HTTP/1.1\r\nContent-Length: 2\r\ncontent-length: 2, 2\r\n\r\nok");
    assert_eq!(req.body(), b"ok");
}

#[test]
fn query_decoding() {
    let req = parse_one(
        b"GET /task?data=hello%20world&x=%E2%9C%93&plus=a+b&bad=%zz%4&empty&=v&data=second HTTP/1.1\r\n\r\n",
    );
    assert_eq!(req.path(), "/task");
    assert_eq!(
        req.query(),
        Some("data=hello%20world&x=%E2%9C%93&plus=a+b&bad=%zz%4&empty&=v&data=second")
    );
    assert_eq!(req.query_param("data").as_deref(), Some("hello world"));
    assert_eq!(req.query_param("x").as_deref(), Some("\u{2713}"));
    assert_eq!(req.query_param("plus").as_deref(), Some("a b"));
    assert_eq!(req.query_param("bad").as_deref(), Some("%zz%4"));
    assert_eq!(req.query_param("empty").as_deref(), Some(""));
    assert_eq!(req.query_param("").as_deref(), Some("v"));
    assert_eq!(req.query_param("missing"), None);
    let req = parse_one(b"GET /slow?ms=25 HTTP/1.1\r\n\r\n");
    assert_eq!(req.query_param("ms").as_deref(), Some("25"));
    assert_eq!(parse_one(GET).query_param("ms"), None);
}

#[test]
fn absolute_form_target_path() {
    let req = parse_one(b"GET http://example.com/a/b?c=d HTTP/1.1\r\n\r\n");
    assert_eq!(req.path(), "/a/b");
    assert_eq!(req.query_param("c").as_deref(), Some("d"));
    let req = parse_one(b"GET http://example.com HTTP/1.1\r\n\r\n");
    assert_eq!(req.path(), "/");
    let req = parse_one(b"GET /redirect?to=http://x/y HTTP/1.1\r\n\r\n");
    assert_eq!(req.path(), "/redirect");
}

#[test]
fn leading_empty_lines_are_skipped() {
    let reqs = feed(Limits::default(), b"\r\n\r\nGET /x HTTP/1.1\r\n\r\n", 1).unwrap();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path(), "/x");
}

#[test]
fn expect_100_continue_is_answered_once() {
    let mut p = RequestParser::default();
    let head = b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
    assert!(matches!(
        p.parse(head).unwrap(),
        ParseStatus::Partial { .. }
    ));
    let mut out = Vec::new();
    assert!(p.write_continue(&mut out));
    assert_eq!(out, b"HTTP/1.1 100 Continue\r\n\r\n");
    assert!(!p.write_continue(&mut out));
    assert!(matches!(
        p.parse(b"ok").unwrap(),
        ParseStatus::Complete { .. }
    ));
    // Body already sent along with the head: no interim response.
    let mut p = RequestParser::default();
    let mut whole = head.to_vec();
    whole.push(b'o');
    assert!(matches!(
        p.parse(&whole).unwrap(),
        ParseStatus::Partial { .. }
    ));
    assert!(!p.write_continue(&mut out));
    // Over the limit: 413 right away, before the client sends the body.
    let err = parse_err(
        small_limits(),
        b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 100\r\n\r\n",
    );
    assert_eq!(err.status(), 413);
}

#[test]
fn recycled_buffers_are_reused() {
    let mut p = RequestParser::default();
    let first = match p.parse(GET).unwrap() {
        ParseStatus::Complete { request, .. } => request,
        other => panic!("{other:?}"),
    };
    let ptr = first.head.as_ptr();
    p.recycle(first);
    match p.parse(b"GET /other HTTP/1.1\r\n\r\n").unwrap() {
        ParseStatus::Complete { request, .. } => {
            assert_eq!(request.head.as_ptr(), ptr);
            assert_eq!(request.path(), "/other");
            assert_eq!(request.header("host"), None);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn conn_buffer_feed_keeps_every_byte_across_growth_and_compaction() {
    // Requests whose header value says how long it is, so a lost byte shows.
    let value = |i: usize| -> String {
        (0..900)
            .map(|k| char::from(b'a' + ((i + k) % 26) as u8))
            .collect()
    };
    let request = |i: usize| format!("GET /{i} HTTP/1.1\r\nX: {}\r\n\r\n", value(i)).into_bytes();
    let check = |conn: &mut ConnBuffer, from: usize, to: usize| {
        for i in from..to {
            let req = conn.next_request().unwrap().expect("a whole request");
            assert_eq!(req.path(), format!("/{i}"));
            assert_eq!(req.header_str("x"), Some(value(i).as_str()));
            conn.recycle(req);
        }
        assert!(conn.next_request().unwrap().is_none());
    };
    let mut conn = ConnBuffer::new(Limits::default());
    // Over the initial storage in one feed: it grows.
    conn.feed(&(0..6).flat_map(request).collect::<Vec<u8>>());
    check(&mut conn, 0, 6);
    // Half a request left behind, then more than the free room: compacted, then grown.
    let next = request(6);
    conn.feed(&next[..500]);
    check(&mut conn, 6, 6);
    let mut rest = next[500..].to_vec();
    rest.extend((7..20).flat_map(request));
    conn.feed(&rest);
    check(&mut conn, 6, 20);
    assert!(conn.is_idle());
}

#[test]
fn conn_buffer_idle_tracking_and_growth() {
    let mut conn = ConnBuffer::new(Limits::default());
    assert!(conn.is_idle());
    // A head bigger than the initial storage forces growth.
    let mut head = b"GET /big HTTP/1.1\r\nX: ".to_vec();
    head.resize(head.len() + 6000, b'a');
    head.extend_from_slice(b"\r\n\r\n");
    let mut rest = &head[..];
    let mut got = None;
    while !rest.is_empty() {
        let space = conn.spare();
        let n = space.len().min(rest.len());
        space[..n].copy_from_slice(&rest[..n]);
        conn.filled(n);
        rest = &rest[n..];
        if !rest.is_empty() {
            assert!(!conn.is_idle());
        }
        if let Some(r) = conn.next_request().unwrap() {
            got = Some(r);
        }
    }
    assert_eq!(got.unwrap().path(), "/big");
    assert!(conn.is_idle());
    assert_eq!(conn.buffered(), 0);
    let mut reader: &[u8] = b"GET /r HTTP/1.1\r\n\r\n";
    assert_eq!(conn.read_from(&mut reader).unwrap(), 19);
    assert_eq!(conn.next_request().unwrap().unwrap().path(), "/r");
    assert_eq!(
        conn.next_request().unwrap().map(|r| r.path().to_owned()),
        None
    );
}

#[test]
fn response_serialization_is_exact() {
    let meta = ResponseMeta {
        version: 1,
        keep_alive: true,
        head: false,
        date: None,
    };
    let (text, keep) = serialize(&Response::text(200, "hello"), meta);
    assert_eq!(
        text,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 5\r\n\r\nhello"
    );
    assert!(keep);

    let resp = Response::json(404, String::from("{\"code\":1}")).header("X-Id", "7");
    let (text, keep) = serialize(
        &resp,
        ResponseMeta {
            keep_alive: false,
            date: Some("Sun, 06 Nov 1994 08:49:37 GMT"),
            ..meta
        },
    );
    assert_eq!(
        text,
        "HTTP/1.1 404 Not Found\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Type: application/json\r\nX-Id: 7\r\nContent-Length: 10\r\nConnection: close\r\n\r\n{\"code\":1}"
    );
    assert!(!keep);

    // HTTP/1.0 keep-alive client is told so; HEAD gets the length but no body.
    let (text, _) = serialize(
        &Response::text(200, "hello"),
        ResponseMeta {
            version: 0,
            head: true,
            ..meta
        },
    );
    assert_eq!(
        text,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n"
    );

    // 204: no Content-Length, no body; unknown status keeps the mandatory space.
    let (text, _) = serialize(&Response::new(204).body(&b"ignored"[..]), meta);
    assert_eq!(text, "HTTP/1.1 204 No Content\r\n\r\n");
    let (text, _) = serialize(&Response::new(299), meta);
    assert_eq!(text, "HTTP/1.1 299 \r\nContent-Length: 0\r\n\r\n");
}

#[test]
fn response_header_rules() {
    let meta = parse_one(GET).response_meta();
    let resp = Response::text(200, "x")
        .header("Content-Length", "999")
        .header("Transfer-Encoding", "chunked")
        .header("X-Evil", "a\r\nSet-Cookie: b")
        .header("Content-Type", "text/html")
        .header("Connection", "close");
    assert!(resp.closes());
    assert_eq!(resp.header_value("content-type"), Some("text/html"));
    let (text, keep) = serialize(&resp, meta);
    assert_eq!(
        text,
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx"
    );
    assert!(!keep);
    // Out-of-range status becomes 500 rather than a malformed status line.
    let (text, _) = serialize(&Response::new(42), meta);
    assert!(
        text.starts_with("HTTP/1.1 500 Internal Server Error\r\n"),
        "{text}"
    );
}

#[test]
fn error_responses_close_the_connection() {
    for (err, status) in [
        (HttpError::BadChunk("x"), "400 Bad Request"),
        (
            HttpError::HeadTooLarge { limit: 1 },
            "431 Request Header Fields Too Large",
        ),
        (
            HttpError::BodyTooLarge {
                length: 2,
                limit: 1,
            },
            "413 Content Too Large",
        ),
    ] {
        let resp = err.response();
        let mut out = Vec::new();
        let keep = resp.write_to(
            &mut out,
            ResponseMeta {
                version: 1,
                keep_alive: true,
                head: false,
                date: None,
            },
        );
        assert!(!keep);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status}\r\n")),
            "{text}"
        );
        assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
    }
}

#[test]
fn hostile_inputs_never_panic() {
    // A deterministic pseudo-random byte soup mixed with HTTP fragments, fed at odd steps.
    let fragments: [&[u8]; 8] = [
        b"GET / HTTP/1.1\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"Content-Length: 5\r\n",
        b"\r\n",
        b"5\r\nhello\r\n",
        b"0\r\n\r\n",
        b";;;\r\r\n\n",
        b"\xff\xfe\x00",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..300 {
        let mut input = Vec::new();
        for _ in 0..12 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            input.extend_from_slice(fragments[(seed % 8) as usize]);
        }
        let step = (seed % 5 + 1) as usize;
        let _ = feed(small_limits(), &input, step);
    }
}

#[test]
fn zero_length_body_and_head_method() {
    let req = parse_one(b"POST /e HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert!(req.body().is_empty());
    assert!(!req.response_meta().head);
    let req = parse_one(b"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let meta = req.response_meta();
    assert!(meta.head && meta.keep_alive);
    assert_eq!(meta.version, 0);
    let req = parse_one(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    assert!(req.body().is_empty());
}

#[test]
fn header_values_are_trimmed_and_may_be_binary() {
    let req = parse_one(b"GET / HTTP/1.1\r\nX-A:   spaced value \t \r\nX-B: caf\xe9\r\n\r\n");
    assert_eq!(req.header("x-a"), Some(&b"spaced value"[..]));
    assert_eq!(req.header("x-b"), Some(&b"caf\xe9"[..]));
    assert_eq!(req.header_str("x-b"), None);
    assert_eq!(req.header_str("x-a"), Some("spaced value"));
}

#[test]
fn header_count_at_limit_is_accepted() {
    let mut head = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..8 {
        head.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    let reqs = feed(small_limits(), &head, 3).unwrap();
    assert_eq!(reqs[0].headers().count(), 8);
}

#[test]
fn slow_oversized_head_is_431_and_slow_garbage_is_400() {
    let mut head = b"GET / HTTP/1.1\r\n".to_vec();
    head.resize(400, b'a');
    let err = feed(small_limits(), &head, 1).unwrap_err();
    assert_eq!(err.status(), 431);
    let err = feed(Limits::default(), b"\x16\x03\x01\x00\xa5\x01\x00\x00", 1).unwrap_err();
    assert_eq!(err.status(), 400);
    let err = feed(Limits::default(), b"GET / HTTP/1.1\r\nX\x01: y\r\n\r\n", 1).unwrap_err();
    assert_eq!(err.status(), 400);
}

/// A tiny deterministic generator (xorshift64) for the randomized tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> usize {
        (self.next() % n) as usize
    }
}

/// Random valid pipelines (GET, Content-Length and chunked bodies with extensions and
/// trailers) fed in random piece sizes must yield exactly the generated requests.
#[test]
fn random_pipelines_split_anywhere_parse_exactly() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for round in 0..200 {
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for n in 0..(1 + rng.below(6)) {
            let body: Vec<u8> = (0..rng.below(40)).map(|_| rng.next() as u8).collect();
            let path = format!("/r{round}/{n}");
            match rng.below(3) {
                0 => {
                    wire.extend_from_slice(
                        format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes(),
                    );
                    expected.push((path, Vec::new()));
                }
                1 => {
                    wire.extend_from_slice(
                        format!(
                            "POST {path} HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
                            body.len()
                        )
                        .as_bytes(),
                    );
                    wire.extend_from_slice(&body);
                    expected.push((path, body));
                }
                _ => {
                    wire.extend_from_slice(
                        format!("POST {path} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
                            .as_bytes(),
                    );
                    let mut rest = &body[..];
                    while !rest.is_empty() {
                        let take = 1 + rng.below(rest.len() as u64);
                        let ext = if rng.below(2) == 0 { ";a=b" } else { "" };
                        wire.extend_from_slice(format!("{take:X}{ext}\r\n").as_bytes());
                        wire.extend_from_slice(&rest[..take]);
                        wire.extend_from_slice(b"\r\n");
                        rest = &rest[take..];
                    }
                    wire.extend_from_slice(b"0\r\n");
                    if rng.below(2) == 0 {
                        wire.extend_from_slice(b"T: v\r\n");
                    }
                    wire.extend_from_slice(b"\r\n");
                    expected.push((path, body));
                }
            }
        }
        let step = 1 + rng.below(wire.len() as u64);
        let got = feed(Limits::default(), &wire, step).unwrap();
        let got: Vec<(String, Vec<u8>)> = got
            .iter()
            .map(|r| (r.path().to_owned(), r.body().to_vec()))
            .collect();
        assert_eq!(got, expected, "round {round}, step {step}");
    }
}

#[test]
fn recycle_drops_a_big_body_buffer() {
    let mut p = RequestParser::default();
    let mut big = b"POST / HTTP/1.1\r\nContent-Length: 100000\r\n\r\n".to_vec();
    big.resize(big.len() + 100_000, b'b');
    let req = match p.parse(&big).unwrap() {
        ParseStatus::Complete { request, .. } => request,
        other => panic!("{other:?}"),
    };
    assert_eq!(req.body().len(), 100_000);
    p.recycle(req);
    match p.parse(GET).unwrap() {
        ParseStatus::Complete { request, .. } => assert_eq!(request.body.capacity(), 0),
        other => panic!("{other:?}"),
    }
}

#[test]
fn error_write_response_is_a_closing_answer() {
    let mut out = Vec::new();
    HttpError::TooManyHeaders { limit: 3 }.write_response(&mut out, Some("D"));
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "HTTP/1.1 431 Request Header Fields Too Large\r\nDate: D\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 32\r\nConnection: close\r\n\r\nRequest Header Fields Too Large\n"
    );
    let meta = ResponseMeta::default();
    assert!(meta.keep_alive && meta.version == 1 && !meta.head && meta.date.is_none());
}
