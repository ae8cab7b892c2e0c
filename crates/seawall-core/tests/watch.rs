//! Watchers added to an event stream see what the wrappers they replace saw: every event
//! in order, innermost first, the end, and a drop outermost first with the source last.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;
use seawall_core::{EventStream, FinishReason, StreamEvent, StreamWatcher};

type Log = Arc<Mutex<Vec<String>>>;

/// Writes what it sees to the log, under its name.
struct Logger {
    name: &'static str,
    log: Log,
}

impl StreamWatcher for Logger {
    fn on_event(&mut self, event: &StreamEvent) {
        let seen = match event {
            StreamEvent::TextDelta(text) => text.clone(),
            other => format!("{other:?}"),
        };
        self.log
            .lock()
            .unwrap()
            .push(format!("{} {seen}", self.name));
    }

    fn on_end(&mut self) {
        self.log.lock().unwrap().push(format!("{} end", self.name));
    }
}

impl Drop for Logger {
    fn drop(&mut self) {
        self.log
            .lock()
            .unwrap()
            .push(format!("{} dropped", self.name));
    }
}

/// Two text deltas, then pending forever; logs its drop.
struct Source {
    sent: u8,
    log: Log,
}

impl Stream for Source {
    type Item = StreamEvent;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        self.sent += 1;
        match self.sent {
            1 => Poll::Ready(Some(StreamEvent::TextDelta("a".into()))),
            2 => Poll::Ready(Some(StreamEvent::TextDelta("b".into()))),
            _ => Poll::Pending,
        }
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.log.lock().unwrap().push("source dropped".into());
    }
}

fn logger(name: &'static str, log: &Log) -> Logger {
    Logger {
        name,
        log: Arc::clone(log),
    }
}

fn taken(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[test]
fn watchers_see_each_event_innermost_first_then_the_end() {
    let log = Log::default();
    let mut stream = EventStream::from_events([
        StreamEvent::TextDelta("a".into()),
        StreamEvent::Finish(FinishReason::Stop),
    ]);
    stream.watch(logger("inner", &log));
    stream.watch(logger("outer", &log));
    let mut cx = Context::from_waker(Waker::noop());
    let mut events = Vec::new();
    while let Poll::Ready(Some(event)) = Pin::new(&mut stream).poll_next(&mut cx) {
        events.push(event);
    }
    assert_eq!(events.len(), 2, "events pass unchanged");
    assert_eq!(
        taken(&log),
        [
            "inner a",
            "outer a",
            "inner Finish(Stop)",
            "outer Finish(Stop)",
            "inner end",
            "outer end"
        ]
    );
    drop(stream);
    assert_eq!(taken(&log), ["outer dropped", "inner dropped"]);
}

#[test]
fn a_stream_dropped_unfinished_lets_go_of_its_outermost_watcher_first_and_its_source_last() {
    let log = Log::default();
    let mut stream = EventStream::new(Source {
        sent: 0,
        log: Arc::clone(&log),
    });
    stream.watch(logger("first", &log));
    // A wrapper between watchers keeps them apart: the outer ones see what it yields.
    let mut stream = EventStream::new(stream);
    stream.watch(logger("second", &log));
    stream.watch(logger("third", &log));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(Pin::new(&mut stream).poll_next(&mut cx).is_ready());
    assert!(Pin::new(&mut stream).poll_next(&mut cx).is_ready());
    assert!(Pin::new(&mut stream).poll_next(&mut cx).is_pending());
    assert_eq!(
        taken(&log),
        [
            "first a", "second a", "third a", "first b", "second b", "third b"
        ]
    );
    drop(stream);
    assert_eq!(
        taken(&log),
        [
            "third dropped",
            "second dropped",
            "first dropped",
            "source dropped"
        ]
    );
}
