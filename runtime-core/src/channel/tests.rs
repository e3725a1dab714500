//! The framing of the parent/helper channel, over real socketpairs (no root):
//! sizes around the frame and header boundaries, with 0 to [`MAX_FDS`] fds,
//! and the refusals of malformed frames.

use std::io::{IoSlice, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use proptest::prelude::*;

use super::*;

/// A pipe: the write end travels, the read end tells whether every copy of
/// the write end was closed (EOF) or one still lives somewhere.
fn pipe() -> (std::fs::File, OwnedFd) {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    (std::fs::File::from(r), w)
}

fn ino(fd: impl AsFd) -> u64 {
    nix::sys::stat::fstat(fd.as_fd()).unwrap().st_ino
}

fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Sends `len` bytes with `nfds` fds from one thread, receives them here.
fn round_trip(len: usize, nfds: usize) {
    let (a, b) = Channel::pair().unwrap();
    let data = payload(len, len as u8);
    let pipes: Vec<_> = (0..nfds).map(|_| pipe()).collect();
    let raws: Vec<RawFd> = pipes.iter().map(|(_, w)| w.as_raw_fd()).collect();
    let want = data.clone();
    let sender = std::thread::spawn(move || a.send_bytes(&want, &raws).map(|()| a));
    let (got, fds) = b.recv_bytes().unwrap().expect("a message, not EOF");
    let a = sender.join().unwrap().unwrap();
    assert_eq!(got.len(), len, "length of a {len}-byte message");
    assert!(got == data, "bytes of a {len}-byte message differ");
    assert_eq!(fds.len(), nfds);
    for (fd, (_, w)) in fds.iter().zip(&pipes) {
        assert_eq!(ino(fd), ino(w), "fd order or identity");
        let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(flags & libc::FD_CLOEXEC, 0, "received fd without CLOEXEC");
    }
    // The next message starts cleanly after a multi-frame one.
    a.send_bytes(b"next", &[]).unwrap();
    assert_eq!(b.recv_bytes().unwrap().unwrap().0, b"next");
    drop(a);
    assert!(
        b.recv_bytes().unwrap().is_none(),
        "EOF after the peer closed"
    );
}

#[test]
fn sizes_around_frame_boundaries() {
    let body = FRAME - HEADER;
    let mut sizes = vec![0, 1, 2, 7, 8, 9, body - 1, body, body + 1];
    for k in 1..4 {
        for d in [-1isize, 0, 1] {
            sizes.push((body as isize + (k * FRAME) as isize + d) as usize);
        }
    }
    sizes.extend([FRAME - 1, FRAME, FRAME + 1, 2 * FRAME, 212_992, 1536 * 1024]);
    for len in sizes {
        for nfds in 0..=MAX_FDS {
            round_trip(len, nfds);
        }
    }
}

#[test]
fn six_mebibytes_of_exec_args_cross() {
    // The kernel's own ceiling for execve's args and env.
    round_trip(6 * 1024 * 1024, 1);
}

#[test]
fn an_exec_with_one_and_a_half_mebibytes_of_args_round_trips() {
    let mut p = oci_spec::runtime::Process::default();
    let args: Vec<String> = (0..1536)
        .map(|i| format!("{i:04}{}", "a".repeat(1020)))
        .collect();
    p.set_args(Some(args.clone()));
    let msg = ToInit::Exec(Box::new(ExecConfig {
        id: "c".into(),
        process: p,
        seccomp: None,
        cgroups: vec![],
    }));
    let (a, b) = Channel::pair().unwrap();
    let (_r, w) = pipe();
    let raw = w.as_raw_fd();
    let sender = std::thread::spawn(move || a.send(&msg, Some(raw)));
    let (got, fd) = b.recv::<ToInit>().unwrap().unwrap();
    sender.join().unwrap().unwrap();
    let ToInit::Exec(cfg) = got else {
        panic!("not an exec: {got:?}")
    };
    assert_eq!(cfg.process.args().as_ref(), Some(&args));
    assert_eq!(ino(fd.unwrap()), ino(&w));
}

#[test]
fn too_large_is_refused_before_anything_is_sent() {
    let (a, b) = Channel::pair().unwrap();
    let e = a.send_bytes(&vec![0; MAX_MSG + 1], &[]).unwrap_err();
    assert!(e.to_string().contains("limit"), "{e}");
    let (_r1, w1) = pipe();
    let three = [w1.as_raw_fd(); 3];
    assert!(a.send_bytes(b"x", &three).is_err());
    drop(a);
    assert!(b.recv_bytes().unwrap().is_none(), "nothing was sent");
}

fn raw_send(c: &Channel, bytes: &[u8], fds: &[RawFd]) {
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
    sendmsg::<()>(
        c.raw(),
        &[IoSlice::new(bytes)],
        cmsgs,
        MsgFlags::empty(),
        None,
    )
    .unwrap();
}

fn header(len: u64) -> Vec<u8> {
    len.to_le_bytes().to_vec()
}

/// Every copy of the pipe's write end is closed: the receiver dropped what it refused.
fn assert_closed(mut r: std::fs::File) {
    let mut buf = [0u8; 1];
    assert_eq!(r.read(&mut buf).unwrap(), 0, "a received fd was leaked");
}

#[test]
fn malformed_frames_are_refused_and_their_fds_closed() {
    let refuse = |frames: &[(&[u8], usize)], what: &str| {
        let (a, b) = Channel::pair().unwrap();
        let (r, w) = pipe();
        for (bytes, nfds) in frames {
            let fds = vec![w.as_raw_fd(); *nfds];
            raw_send(&a, bytes, &fds);
        }
        drop(w);
        drop(a);
        let e = b.recv_bytes().expect_err(what);
        assert!(!e.to_string().is_empty());
        drop(b);
        assert_closed(r);
    };
    let big = vec![1u8; FRAME + 1];
    refuse(&[(&big, 1)], "a frame longer than FRAME");
    refuse(&[(b"abc", 1)], "a frame shorter than the header");
    refuse(&[(&header(MAX_MSG as u64 + 1), 1)], "over MAX_MSG");
    refuse(&[(&header(u64::MAX), 0)], "length u64::MAX");
    let mut h = header(10);
    h.extend_from_slice(b"0123456789extra");
    refuse(&[(&h, 0)], "more bytes than announced");
    let mut h = header(100_000);
    h.extend_from_slice(&[0; 100]);
    refuse(&[(&h, 1)], "a short first frame of a long message");
    let mut full = header(FRAME as u64 * 2);
    full.resize(FRAME, 0);
    refuse(&[(&full, 0)], "EOF in the middle of a message");
    refuse(&[(&full, 0), (&[0u8; 10], 0)], "a short continuation frame");
    refuse(
        &[(&full, 0), (&[0u8; FRAME], 1)],
        "fds on a continuation frame",
    );
    let mut one = header(1);
    one.push(b'x');
    refuse(&[(&one, MAX_FDS + 1)], "too many fds");
    // recv: one fd is all a typed message takes.
    let (a, b) = Channel::pair().unwrap();
    let (r, w) = pipe();
    let raw = w.as_raw_fd();
    a.send_bytes(b"\"Ready\"", &[raw, raw]).unwrap();
    drop(w);
    assert!(b.recv::<FromInit>().is_err());
    assert_closed(r);
}

#[test]
fn error_reports_fit_one_frame() {
    for len in [0, 10, FRAME, 10 * FRAME] {
        // Multi-byte chars and characters JSON escapes sixfold.
        let text: String = "é\u{1}x".chars().cycle().take(len).collect();
        let msg = error_report(text);
        assert!(serde_json::to_vec(&msg).unwrap().len() + HEADER <= FRAME);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_size_and_fd_count_round_trips(len in 0usize..(4 * FRAME + 64), nfds in 0usize..=MAX_FDS) {
        round_trip(len, nfds);
    }

    #[test]
    fn near_multiples_of_the_frame_round_trip(k in 0usize..48, d in -9isize..=9, nfds in 0usize..=MAX_FDS) {
        let len = ((k * FRAME) as isize - HEADER as isize + d).max(0) as usize;
        round_trip(len, nfds);
    }

    #[test]
    fn garbage_frames_never_panic(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..4)) {
        let (a, b) = Channel::pair().unwrap();
        for f in &frames {
            raw_send(&a, f, &[]);
        }
        drop(a);
        // Any result but a panic or a hang: each frame ends or the EOF does.
        let _ = b.recv::<ToInit>();
    }
}
