//! Where the log's lines go: a bounded queue and a writer thread that writes them in
//! batches.
//!
//! Batched for a measured reason: handing each line to a thread that waits for it (as
//! `tracing-appender`'s writer does) wakes that thread once per line, and on a busy gateway
//! those wake-ups, not the lines, were most of the access log's cost (see BENCHMARKS.md).
//! Here the thread, once woken, writes what has arrived and then sleeps for
//! [`BATCH_WINDOW`] before looking again; lines sent meanwhile wait in the queue and wake
//! nobody. It blocks on the queue only when it finds it empty, so an idle gateway's writer
//! sleeps without waking.

use std::io::Write;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long the writer thread waits after a write before it looks for more lines: the
/// most a line waits on a busy gateway.
pub(crate) const BATCH_WINDOW: Duration = Duration::from_millis(5);

/// Lines the queue holds before it drops new ones (as `tracing-appender`'s default): a
/// stalled output loses lines, it never blocks a call.
pub(crate) const QUEUED_LINES: usize = 128_000;

/// How long dropping the [`LogGuard`] waits for the queued lines to be written.
const FLUSH_WAIT: Duration = Duration::from_secs(1);

enum Message {
    Line(Vec<u8>),
    /// Write what is queued and stop.
    Shutdown,
}

/// The writing end of the queue: each `write` is one line (the log formats a whole line,
/// then writes it at once), queued, or dropped when the queue is full.
#[derive(Clone)]
pub struct LineWriter {
    queue: SyncSender<Message>,
}

impl std::fmt::Debug for LineWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineWriter").finish_non_exhaustive()
    }
}

impl Write for LineWriter {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        // Full or closed: the line is lost, the call goes on.
        let _ = self.queue.try_send(Message::Line(line.to_vec()));
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LineWriter {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        self.clone()
    }
}

/// Writes the queued lines when dropped (waiting up to a second) and stops the writer
/// thread: keep it until exit.
#[must_use = "dropping the guard stops the log's writer thread"]
pub struct LogGuard {
    /// Dropped with the guard: with the writers' gone too, the thread sees the queue closed.
    queue: Option<SyncSender<Message>>,
    done: Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LogGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogGuard").finish_non_exhaustive()
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        // A full queue means the thread is busy, not waiting: it stops when it sees every
        // sender gone or, failing that, is left behind after the wait.
        if let Some(queue) = self.queue.take() {
            let _ = queue.try_send(Message::Shutdown);
        }
        if self.done.recv_timeout(FLUSH_WAIT).is_ok()
            && let Some(thread) = self.thread.take()
        {
            let _ = thread.join();
        }
    }
}

/// A queue of lines to `out`, written by a thread named `thread_name`.
pub fn line_writer<W>(out: W, thread_name: &str) -> std::io::Result<(LineWriter, LogGuard)>
where
    W: Write + Send + 'static,
{
    let (queue, lines) = mpsc::sync_channel(QUEUED_LINES);
    let (finished, done) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(thread_name.to_owned())
        .spawn(move || {
            write_lines(&lines, out);
            let _ = finished.send(());
        })?;
    Ok((
        LineWriter {
            queue: queue.clone(),
        },
        LogGuard {
            queue: Some(queue),
            done,
            thread: Some(thread),
        },
    ))
}

/// The writer thread: waits for a line, then writes what has arrived every
/// [`BATCH_WINDOW`] until a look finds nothing, and waits again.
fn write_lines(lines: &Receiver<Message>, mut out: impl Write) {
    let mut batch = Vec::with_capacity(64 * 1024);
    loop {
        let Ok(first) = lines.recv() else {
            return;
        };
        let mut open = take(first, &mut batch);
        loop {
            open &= drain(lines, &mut batch);
            if batch.is_empty() {
                break;
            }
            // A failed write loses these lines; the next batch is tried all the same.
            let _ = out.write_all(&batch);
            let _ = out.flush();
            batch.clear();
            if !open {
                return;
            }
            // A sleep, not a wait on the queue: the lines sent meanwhile find nobody
            // waiting, so they wake nobody.
            std::thread::sleep(BATCH_WINDOW);
        }
        if !open {
            return;
        }
    }
}

/// Adds the lines already queued to `batch`; `false` once the queue is closed.
fn drain(lines: &Receiver<Message>, batch: &mut Vec<u8>) -> bool {
    loop {
        match lines.try_recv() {
            Ok(message) => {
                if !take(message, batch) {
                    return false;
                }
            }
            Err(TryRecvError::Empty) => return true,
            Err(TryRecvError::Disconnected) => return false,
        }
    }
}

/// Adds a line to `batch`; `false` for the shutdown.
fn take(message: Message, batch: &mut Vec<u8>) -> bool {
    match message {
        Message::Line(line) => {
            batch.extend_from_slice(&line);
            true
        }
        Message::Shutdown => false,
    }
}

/// An output that keeps what is written to it, for the log's tests; clones share it.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl Captured {
    /// Everything written so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[cfg(test)]
impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn every_line_is_written_in_order_by_the_time_the_guard_is_dropped() {
        let out = Captured::default();
        let (writer, guard) = line_writer(out.clone(), "log-test").unwrap();
        for i in 0..1000 {
            writer
                .make_writer()
                .write_all(format!("line {i}\n").as_bytes())
                .unwrap();
        }
        drop(guard);
        let text = out.text();
        let expected: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(text, expected);
    }

    #[test]
    fn lines_after_the_guard_is_dropped_are_lost_not_blocking() {
        let out = Captured::default();
        let (writer, guard) = line_writer(out.clone(), "log-test").unwrap();
        drop(guard);
        writer.make_writer().write_all(b"late\n").unwrap();
        assert!(out.text().is_empty());
    }

    #[test]
    fn a_full_queue_drops_lines_rather_than_blocking() {
        // A writer that never finishes its first write: the queue fills, and writing goes
        // on returning at once.
        struct Stalled(Arc<Mutex<()>>);
        impl Write for Stalled {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                let _held = self.0.lock().unwrap();
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let stall = Arc::new(Mutex::new(()));
        let held = stall.lock().unwrap();
        let (writer, guard) = line_writer(Stalled(Arc::clone(&stall)), "log-test").unwrap();
        for _ in 0..QUEUED_LINES + 10 {
            writer.make_writer().write_all(b"x\n").unwrap();
        }
        drop(held);
        drop(writer);
        drop(guard);
    }
}
