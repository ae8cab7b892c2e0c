use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::error::{ErrorKind, LlmError};
use crate::request::ToolCall;
use crate::response::{AssistantMessage, FinishReason, Usage};

/// One event of a streamed response, the same for every provider.
///
/// A well-formed stream is `Start`, any number of deltas and `Usage` events, then `Finish`,
/// possibly followed by a last `Usage` (OpenAI sends usage after the finish reason). A
/// stream that fails ends with `Error` instead of `Finish`; a stream that simply stops
/// without either is truncated, and adapters turn that into an `Error` of kind
/// [`ErrorKind::StreamTruncated`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum StreamEvent {
    /// The assistant's message starts. A second `Start` after content comes from mid-stream
    /// recovery: its `id` is `None` and its `model` names the model that answers from then on.
    Start {
        /// The provider's response id, when the provider sends it up front.
        id: Option<String>,
        /// The model that is answering, when the provider names it.
        model: Option<String>,
    },
    /// More text.
    TextDelta(String),
    /// A fragment of a tool call. The first fragment of a call carries its id and name; the
    /// argument fragments join, in order, to the call's JSON arguments.
    ToolCallDelta {
        /// Which call of the message this fragment belongs to, from 0.
        index: u32,
        /// The call's id, on its first fragment.
        id: Option<String>,
        /// The tool's name, on its first fragment.
        name: Option<String>,
        /// The next piece of the arguments' JSON text.
        arguments: String,
    },
    /// Usage so far. Each `Usage` event replaces the ones before it.
    Usage(Usage),
    /// The provider's end of message arrived: the stream is complete.
    Finish(FinishReason),
    /// The stream failed; nothing follows.
    Error(LlmError),
}

impl StreamEvent {
    /// Whether this event carries content the caller sees (text or a tool call): the first
    /// such event is the streaming commit point.
    pub fn is_content(&self) -> bool {
        matches!(self, Self::TextDelta(_) | Self::ToolCallDelta { .. })
    }
}

/// Sees a stream's events as they pass, without changing them: what a layer that only
/// watches a stream (to settle a reservation, record an outcome) adds with
/// [`EventStream::watch`].
///
/// Whatever a watcher must do when the stream is dropped unfinished, it does in its own
/// `Drop`.
pub trait StreamWatcher: Send + 'static {
    /// Sees an event on its way to the caller.
    fn on_event(&mut self, event: &StreamEvent);

    /// The stream ended: its source returned `None` (again, if it is polled after its end).
    fn on_end(&mut self);
}

/// A boxed stream of [`StreamEvent`]s, as carried by a streamed
/// [`ChatResponse`](crate::ChatResponse).
pub struct EventStream(Pin<Box<dyn Source>>);

/// What an [`EventStream`] boxes: a stream, and, when it is a [`Watching`], its watchers.
trait Source: Stream<Item = StreamEvent> + Send + 'static {
    /// The watchers, if this is a [`Watching`].
    fn watchers(self: Pin<&mut Self>) -> Option<&mut Vec<Box<dyn StreamWatcher>>> {
        None
    }
}

pin_project_lite::pin_project! {
    /// Any stream given to [`EventStream::new`].
    struct Plain<S> {
        #[pin]
        stream: S,
    }
}

impl<S: Stream<Item = StreamEvent> + Send + 'static> Source for Plain<S> {}

impl<S: Stream<Item = StreamEvent>> Stream for Plain<S> {
    type Item = StreamEvent;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        self.project().stream.poll_next(cx)
    }
}

/// A source and the watchers added to it, innermost first: every watcher added to the
/// same stream shares this one box and one dynamic poll. The first watcher is held in
/// place; only the next ones are boxed.
struct Watching<W> {
    // Fields drop in this order: the watchers added later, the first, the source.
    more: Vec<Box<dyn StreamWatcher>>,
    first: W,
    source: Pin<Box<dyn Source>>,
}

// Nothing in a `Watching` is pinned in place: the source has its own box, and watchers are
// called through `&mut`.
impl<W> Unpin for Watching<W> {}

impl<W: StreamWatcher> Source for Watching<W> {
    fn watchers(self: Pin<&mut Self>) -> Option<&mut Vec<Box<dyn StreamWatcher>>> {
        Some(&mut self.get_mut().more)
    }
}

impl<W: StreamWatcher> Stream for Watching<W> {
    type Item = StreamEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        let this = self.get_mut();
        // Returned as polled, so that the source writes the event where the caller reads it.
        let polled = this.source.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(event)) => {
                this.first.on_event(event);
                for watcher in &mut this.more {
                    watcher.on_event(event);
                }
            }
            Poll::Ready(None) => {
                this.first.on_end();
                for watcher in &mut this.more {
                    watcher.on_end();
                }
            }
            Poll::Pending => {}
        }
        polled
    }
}

impl<W> Drop for Watching<W> {
    fn drop(&mut self) {
        // As if each watcher wrapped the ones before it: the outermost lets go first; the
        // first watcher and the source follow as fields.
        while let Some(watcher) = self.more.pop() {
            drop(watcher);
        }
    }
}

/// Stands in for a source while [`EventStream::watch`] moves it (a zero-sized box).
struct Ended;

impl Source for Ended {}

impl Stream for Ended {
    type Item = StreamEvent;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        Poll::Ready(None)
    }
}

impl EventStream {
    /// Boxes a stream of events.
    pub fn new(stream: impl Stream<Item = StreamEvent> + Send + 'static) -> Self {
        Self(Box::pin(Plain { stream }))
    }

    /// Adds `watcher`, which sees every event after the watchers added before it (as if it
    /// wrapped them), and is dropped before them.
    ///
    /// The first watcher boxes the stream once more, the watcher in the same box; the next
    /// ones join that box (each boxed on its own), so a stream watched by several layers is
    /// polled through one more box, not one per layer, and passes each event to them by
    /// reference.
    pub fn watch(&mut self, watcher: impl StreamWatcher) {
        if let Some(watchers) = self.0.as_mut().watchers() {
            watchers.push(Box::new(watcher));
            return;
        }
        let source = std::mem::replace(&mut self.0, Box::pin(Ended));
        self.0 = Box::pin(Watching {
            more: Vec::new(),
            first: watcher,
            source,
        });
    }

    /// A stream that yields `events` and ends: for tests and for replaying a stored response.
    pub fn from_events(events: impl IntoIterator<Item = StreamEvent>) -> Self {
        Self::new(Replay(events.into_iter().collect::<Vec<_>>().into_iter()))
    }

    /// The next event, or `None` once the stream has ended.
    ///
    /// ```
    /// use seawall_core::{EventStream, FinishReason, StreamEvent};
    /// # use std::future::Future;
    /// # use std::task::{Context, Poll, Waker};
    /// # fn block_on<F: Future>(future: F) -> F::Output {
    /// #     let mut future = std::pin::pin!(future);
    /// #     let mut cx = Context::from_waker(Waker::noop());
    /// #     loop {
    /// #         if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
    /// #             return output;
    /// #         }
    /// #     }
    /// # }
    /// # block_on(async {
    /// let events = [StreamEvent::TextDelta("Paris".into()), StreamEvent::Finish(FinishReason::Stop)];
    /// let mut stream = EventStream::from_events(events.clone());
    /// assert_eq!(stream.next().await, Some(events[0].clone()));
    /// assert_eq!(stream.collect().await, [events[1].clone()]);
    /// # });
    /// ```
    pub async fn next(&mut self) -> Option<StreamEvent> {
        std::future::poll_fn(|cx| self.0.as_mut().poll_next(cx)).await
    }

    /// Every remaining event, in order, once the stream has ended. To get the reply itself,
    /// fold them with a [`StreamAccumulator`].
    pub async fn collect(mut self) -> Vec<StreamEvent> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await {
            events.push(event);
        }
        events
    }
}

impl Stream for EventStream {
    type Item = StreamEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        self.0.as_mut().poll_next(cx)
    }
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EventStream { .. }")
    }
}

struct Replay(std::vec::IntoIter<StreamEvent>);

impl Stream for Replay {
    type Item = StreamEvent;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        Poll::Ready(self.0.next())
    }
}

/// Folds stream events into the complete reply: text, tool calls, usage and finish reason.
///
/// Adapters use it to collect a stream, the gateway to know what was relayed, and recovery
/// to know the text already delivered.
#[derive(Debug, Clone, Default)]
pub struct StreamAccumulator {
    id: Option<String>,
    model: Option<String>,
    text: String,
    tool_calls: Vec<ToolCall>,
    usage: Option<Usage>,
    finish: Option<FinishReason>,
    content_events: u64,
}

impl StreamAccumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one event. Returns the error if the event is one.
    pub fn push(&mut self, event: &StreamEvent) -> Result<(), LlmError> {
        match event {
            StreamEvent::Start { id, model } => {
                if id.is_some() {
                    self.id.clone_from(id);
                }
                if model.is_some() {
                    self.model.clone_from(model);
                }
            }
            StreamEvent::TextDelta(text) => {
                self.content_events += 1;
                self.text.push_str(text);
            }
            StreamEvent::ToolCallDelta {
                index,
                id,
                name,
                arguments,
            } => {
                self.content_events += 1;
                let index = *index as usize;
                if self.tool_calls.len() <= index {
                    self.tool_calls.resize_with(index + 1, || ToolCall {
                        id: String::new(),
                        name: String::new(),
                        arguments: String::new(),
                    });
                }
                let call = &mut self.tool_calls[index];
                if let Some(id) = id {
                    call.id.clone_from(id);
                }
                if let Some(name) = name {
                    call.name.clone_from(name);
                }
                call.arguments.push_str(arguments);
            }
            StreamEvent::Usage(usage) => self.usage = Some(*usage),
            StreamEvent::Finish(reason) => self.finish = Some(reason.clone()),
            StreamEvent::Error(error) => return Err(error.clone()),
        }
        Ok(())
    }

    /// The text so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The tool calls so far.
    pub fn tool_calls(&self) -> &[ToolCall] {
        &self.tool_calls
    }

    /// The last usage seen.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// The finish reason, once the end of message arrived.
    pub fn finish_reason(&self) -> Option<&FinishReason> {
        self.finish.as_ref()
    }

    /// The response id, if the provider sent one.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The model the provider named, if any.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// How many content events (text or tool-call fragments) were seen.
    pub fn content_events(&self) -> u64 {
        self.content_events
    }

    /// Whether the provider's end of message arrived.
    pub fn is_complete(&self) -> bool {
        self.finish.is_some()
    }

    /// The complete reply.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::StreamTruncated`] if the end of message never arrived: a truncated
    /// stream is never passed off as a complete one.
    pub fn finish(self) -> Result<(AssistantMessage, FinishReason, Option<Usage>), LlmError> {
        let reason = self.finish.ok_or_else(|| {
            LlmError::new(
                ErrorKind::StreamTruncated,
                "the stream ended before the provider's end of message",
            )
        })?;
        let message = AssistantMessage {
            text: self.text,
            tool_calls: self.tool_calls,
            refusal: None,
        };
        Ok((message, reason, self.usage))
    }
}
