//! Process titles as `ps` shows them (`TestApp.HelloServer: master process`).
//!
//! `ps` reads `/proc/<pid>/cmdline`, i.e. the memory that held argv at exec. Linux has no
//! call to replace it for an unprivileged process, so, like nginx's setproctitle, we
//! overwrite that memory in place: first move the environment strings that follow argv
//! to the heap (so `getenv` keeps working), then write the title over the whole
//! contiguous argv+environ area and pad it with NUL bytes.

use std::ffi::{c_char, c_int, CStr};
use std::sync::atomic::{AtomicIsize, AtomicPtr, Ordering};

static ARGC: AtomicIsize = AtomicIsize::new(0);
static ARGV: AtomicPtr<*mut c_char> = AtomicPtr::new(std::ptr::null_mut());

/// glibc calls the functions in `.init_array` with (argc, argv, envp) before `main`;
/// this is how we learn where argv lives.
extern "C" fn capture_argv(argc: c_int, argv: *mut *mut c_char, _envp: *mut *mut c_char) {
    ARGC.store(argc as isize, Ordering::Relaxed);
    ARGV.store(argv, Ordering::Relaxed);
}

#[used]
#[link_section = ".init_array"]
static CAPTURE_ARGV: extern "C" fn(c_int, *mut *mut c_char, *mut *mut c_char) = capture_argv;

extern "C" {
    static mut environ: *mut *mut c_char;
}

/// The writable area [start, end) that /proc/<pid>/cmdline shows, once per process.
fn title_area() -> Option<(*mut c_char, usize)> {
    let argc = ARGC.load(Ordering::Relaxed);
    let argv = ARGV.load(Ordering::Relaxed);
    if argc <= 0 || argv.is_null() {
        return None;
    }
    // SAFETY: argv is the array glibc handed to the init function: `argc` valid pointers
    // to NUL-terminated strings that live for the whole process. The environment array is
    // NULL-terminated; we only read strings that are contiguous with argv's, and we
    // replace `environ` with heap copies before anyone could see the area overwritten.
    unsafe {
        let start = *argv;
        if start.is_null() {
            return None;
        }
        let mut end = start;
        for i in 0..argc {
            let s = *argv.offset(i);
            if s.is_null() || s != end {
                break;
            }
            end = s.add(CStr::from_ptr(s).to_bytes().len() + 1);
        }
        // Extend over the environment strings that follow argv in memory.
        let env = environ;
        if !env.is_null() {
            let mut count = 0isize;
            while !(*env.offset(count)).is_null() {
                count += 1;
            }
            let mut copies: Vec<*mut c_char> = Vec::with_capacity(count as usize + 1);
            let mut contiguous = true;
            for i in 0..count {
                let s = *env.offset(i);
                let len = CStr::from_ptr(s).to_bytes().len();
                if contiguous && s == end {
                    end = s.add(len + 1);
                } else {
                    contiguous = false;
                }
                copies.push(libc::strdup(s));
            }
            copies.push(std::ptr::null_mut());
            // The copies are leaked on purpose: `environ` must stay valid for the process.
            let leaked = Box::leak(copies.into_boxed_slice());
            environ = leaked.as_mut_ptr();
        }
        Some((start, end as usize - start as usize))
    }
}

/// The writable title area, found once per process image (a forked child inherits it).
static AREA: AtomicPtr<c_char> = AtomicPtr::new(std::ptr::null_mut());
static AREA_LEN: AtomicIsize = AtomicIsize::new(0);

/// Sets the process title shown by `ps` and the kernel's short `comm` name.
/// A title longer than the area is cut (the area holds the original command line and
/// environment, hundreds of bytes at least).
pub fn set_title(title: &str) {
    super::set_thread_name(title);
    let (start, len) = {
        let p = AREA.load(Ordering::Relaxed);
        if p.is_null() {
            match title_area() {
                Some((p, len)) => {
                    AREA.store(p, Ordering::Relaxed);
                    AREA_LEN.store(len as isize, Ordering::Relaxed);
                    (p, len)
                }
                None => return,
            }
        } else {
            (p, AREA_LEN.load(Ordering::Relaxed) as usize)
        }
    };
    if len < 2 {
        return;
    }
    let bytes = title.as_bytes();
    let n = bytes.len().min(len - 1);
    // SAFETY: [start, start+len) is the argv/environ string area of this process, which
    // no Rust reference points into (std copied argv into owned Strings when the CLI was
    // parsed, and environ now points at heap copies). We write exactly `len` bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), start.cast::<u8>(), n);
        std::ptr::write_bytes(start.cast::<u8>().add(n), 0, len - n);
    }
}
