//! A subscriber that keeps every span's and event's fields, for the tests of what the
//! layers trace.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// A span or an event as the subscriber saw it: its name (an event's message) and fields.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub name: String,
    pub parent: Option<String>,
    pub fields: BTreeMap<String, String>,
}

/// Every span and event a subscriber saw, by a `tracing_subscriber` layer.
#[derive(Clone, Default)]
pub struct Capture {
    spans: Arc<Mutex<BTreeMap<u64, Seen>>>,
    events: Arc<Mutex<Vec<Seen>>>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut seen = Seen {
            name: attrs.metadata().name().to_owned(),
            parent: ctx
                .span(id)
                .and_then(|span| span.parent())
                .map(|parent| parent.name().to_owned()),
            ..Seen::default()
        };
        attrs.record(&mut Fields(&mut seen.fields));
        self.spans.lock().unwrap().insert(id.into_u64(), seen);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(seen) = self.spans.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut seen.fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut seen = Seen {
            parent: ctx.event_span(event).map(|span| span.name().to_owned()),
            ..Seen::default()
        };
        event.record(&mut Fields(&mut seen.fields));
        seen.name = seen.fields.remove("message").unwrap_or_default();
        self.events.lock().unwrap().push(seen);
    }
}

impl Capture {
    pub fn spans(&self, name: &str) -> Vec<Seen> {
        self.spans
            .lock()
            .unwrap()
            .values()
            .filter(|s| s.name == name)
            .cloned()
            .collect()
    }

    pub fn events(&self, message: &str) -> Vec<Seen> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.name == message)
            .cloned()
            .collect()
    }
}

/// The value of field `name` of `seen`; panics without one.
pub fn field<'a>(seen: &'a Seen, name: &str) -> &'a str {
    seen.fields
        .get(name)
        .map_or_else(|| panic!("no field {name} in {seen:?}"), String::as_str)
}

thread_local! {
    /// The capture of the test running on this thread, if it installed one.
    static CURRENT: std::cell::RefCell<Option<Capture>> = const { std::cell::RefCell::new(None) };
}

/// The process's one subscriber: hands each span and event to the capture of the thread it
/// happens on. Global, so every callsite is interesting from the start: a thread-local
/// subscriber per test raced with other tests' threads registering a callsite as never
/// interesting (no subscriber there) just after the interest cache was rebuilt.
struct PerThread;

fn current() -> Option<Capture> {
    CURRENT.with(|current| current.borrow().clone())
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for PerThread {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(capture) = current() {
            tracing_subscriber::Layer::<S>::on_new_span(&capture, attrs, id, ctx);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(capture) = current() {
            tracing_subscriber::Layer::<S>::on_record(&capture, id, values, ctx);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if let Some(capture) = current() {
            tracing_subscriber::Layer::<S>::on_event(&capture, event, ctx);
        }
    }
}

/// Stops the thread's capture when dropped.
pub struct Installed(());

impl Drop for Installed {
    fn drop(&mut self) {
        CURRENT.with(|current| current.borrow_mut().take());
    }
}

impl Capture {
    /// Captures what this thread traces until the guard is dropped.
    pub fn install(&self) -> Installed {
        use tracing_subscriber::layer::SubscriberExt;
        static GLOBAL: std::sync::Once = std::sync::Once::new();
        GLOBAL.call_once(|| {
            // Another global subscriber would make this one fail to install, and every
            // capture empty: the tests would say so.
            let _ = tracing::subscriber::set_global_default(
                tracing_subscriber::registry().with(PerThread),
            );
        });
        CURRENT.with(|current| *current.borrow_mut() = Some(self.clone()));
        Installed(())
    }
}
