//! Output of an execution while it runs: the child's pipes are read as they fill (as
//! `wait_with_output` reads them), and the last bytes of each are also kept in a `LiveTail`
//! the run shares with readers (`dvx serve`'s live page). Nothing is written to disk for it.

use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::process::{Child, Output};
use std::sync::{Arc, Mutex};

/// Bytes of each stream a tail keeps.
pub const TAIL: usize = 8 * 1024;

/// The last output of a running execution: (stdout, stderr).
#[derive(Clone, Default)]
pub struct LiveTail(Arc<Mutex<(Vec<u8>, Vec<u8>)>>);

impl std::fmt::Debug for LiveTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveTail")
    }
}

impl LiveTail {
    fn push(&self, stderr: bool, bytes: &[u8]) {
        let Ok(mut g) = self.0.lock() else { return };
        let buf = if stderr { &mut g.1 } else { &mut g.0 };
        buf.extend_from_slice(bytes);
        if buf.len() > TAIL {
            let cut = buf.len() - TAIL;
            buf.drain(..cut);
        }
    }

    /// What the execution printed last, as text.
    pub fn snapshot(&self) -> (String, String) {
        self.0
            .lock()
            .map(|g| {
                (
                    String::from_utf8_lossy(&g.0).into_owned(),
                    String::from_utf8_lossy(&g.1).into_owned(),
                )
            })
            .unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.0
            .lock()
            .map(|g| g.0.is_empty() && g.1.is_empty())
            .unwrap_or(true)
    }
}

/// One of the child's pipes while it is open, its descriptor, and what it gave so far.
type Pipe = (Option<Box<dyn Read>>, i32, Vec<u8>);

/// Wait for `child`, reading its piped stdout and stderr to their ends; `live` gets the
/// bytes as they come. Without `live`, exactly `Child::wait_with_output`.
pub fn wait_with_output(mut child: Child, live: Option<&LiveTail>) -> io::Result<Output> {
    let Some(live) = live else {
        return child.wait_with_output();
    };
    let mut pipes: [Pipe; 2] = [
        match child.stdout.take() {
            Some(p) => {
                let fd = p.as_raw_fd();
                (Some(Box::new(p) as Box<dyn Read>), fd, Vec::new())
            }
            None => (None, -1, Vec::new()),
        },
        match child.stderr.take() {
            Some(p) => {
                let fd = p.as_raw_fd();
                (Some(Box::new(p) as Box<dyn Read>), fd, Vec::new())
            }
            None => (None, -1, Vec::new()),
        },
    ];
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let mut fds: Vec<libc::pollfd> = pipes
            .iter()
            .filter(|p| p.0.is_some())
            .map(|p| libc::pollfd {
                fd: p.1,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        if fds.is_empty() {
            break;
        }
        // SAFETY: `fds` is a valid array of pollfd for the duration of the call.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for pfd in fds.iter().filter(|p| p.revents != 0) {
            let Some(k) = pipes.iter().position(|p| p.1 == pfd.fd) else {
                continue;
            };
            let (reader, _, buf) = &mut pipes[k];
            let Some(r) = reader.as_mut() else { continue };
            // Readable or hung up: this read does not block.
            match r.read(&mut chunk) {
                Ok(0) => *reader = None,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    live.push(k == 1, &chunk[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    let status = child.wait()?;
    let [(_, _, stdout), (_, _, stderr)] = pipes;
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn output_is_whole_and_the_tail_follows_it() {
        let live = LiveTail::default();
        let child = Command::new("sh")
            .arg("-c")
            .arg("head -c 200000 /dev/zero | tr '\\0' a; echo; echo oops >&2; exit 4")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let o = wait_with_output(child, Some(&live)).unwrap();
        assert_eq!(o.status.code(), Some(4));
        assert_eq!(o.stdout.len(), 200_001);
        assert_eq!(o.stderr, b"oops\n");
        let (out, err) = live.snapshot();
        assert_eq!(out.len(), TAIL);
        assert!(out.ends_with("aaa\n"));
        assert_eq!(err, "oops\n");
    }
}
