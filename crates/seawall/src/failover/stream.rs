//! The stream handed to the caller once a target has passed the commit point, and the
//! recovery of that stream when it breaks.

use std::fmt;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use seawall_core::{
    AttemptOutcome, Cause, ChatResponse, Disposition, ErrorKind, EventStream, FinishReason,
    LlmError, Message, RecoveryOutcome, RecoveryPath, RecoveryRecord, StreamAccumulator,
    StreamEvent, Usage,
};
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::future::{Attempt, MemberFuture, Readiness, Walk, poll_ready_by};
use super::target::{Continuation, TargetService};

/// Relays the committed stream to the caller: first the events read before the commit
/// point, then the target's stream.
///
/// Past the commit point nothing is retried transparently: when the stream breaks (an
/// error event, such as a cut connection or an idle timeout, or an end without the
/// provider's end of message) the relay **recovers** it within the call's remaining hops
/// and deadline: it sends the call to the next target (the broken one last, if the
/// failure is one worth retrying there), as a *continuation* (the text already delivered
/// as a trailing assistant message) when the target accepts a prefill, as a *user
/// message* asking to continue when it refuses one, otherwise as a *restart* whose output
/// is matched against what was delivered and passed on only past it. When nothing is left, or a restart diverges, the caller gets one explicit
/// `Error` event, never a truncated stream that looks complete.
pub(crate) struct RelayStream {
    prefix: std::vec::IntoIter<StreamEvent>,
    state: Relay,
    walk: Walk,
    /// The attempt whose stream is relayed (or, while recovering, being called).
    attempt: Attempt,
    /// `None` for the committed attempt, else how the current attempt recovers.
    path: Option<RecoveryPath>,
    mode: Mode,
    delivered: StreamAccumulator,
    complete: bool,
    /// When the current recovery attempt's first content arrived.
    first_content: Option<Duration>,
    /// Usage summed over the attempts that ended.
    usage_done: Option<Usage>,
    /// The last usage the current attempt reported.
    usage_now: Option<Usage>,
    /// The trail's `tokens_used` before this stream's attempts.
    tokens_before: Option<u64>,
    /// The failure that started recovery: what the caller sees if recovery fails.
    original: Option<LlmError>,
    /// An event to yield after the one being yielded.
    pending: Option<StreamEvent>,
    /// Whether the stream broke and recovery began.
    recovering: bool,
    /// Bounds the wait for a recovery member's readiness (allocated when first needed).
    not_ready: Option<Pin<Box<Sleep>>>,
}

enum Relay {
    Streaming(EventStream),
    Ready {
        service: TargetService,
        path: RecoveryPath,
    },
    Calling {
        future: MemberFuture,
        path: RecoveryPath,
    },
    Done,
}

enum Mode {
    /// Events go to the caller as they come.
    Pass,
    /// A continuation whose prefill left out the delivered text's trailing whitespace
    /// (Anthropic refuses a prefill that ends with whitespace): the continuation's leading
    /// whitespace that repeats it, from byte `at` of the delivered text, is dropped.
    Continue { at: usize },
    /// A restart: its content is matched against what was delivered.
    Restart(Matcher),
    /// An answer to the user message asking to continue: its first text is held until
    /// it shows how it joins what was delivered.
    Join(String),
}

/// The user message that asks a model refusing a prefill to continue its cut answer.
const CONTINUE_PROMPT: &str = "Your previous answer was cut off. Continue it exactly where it \
stopped: do not repeat any of it, add no preamble, and write only the rest of the answer.";

/// The characters in `text` before byte `byte` (for messages that count characters).
fn chars_before(text: &str, byte: usize) -> usize {
    text.get(..byte).map_or(byte, |text| text.chars().count())
}

/// How far a restart has reproduced what was delivered: bytes of text and of each tool
/// call's arguments.
struct Matcher {
    text: usize,
    tools: Vec<usize>,
}

enum Fed {
    /// The event only repeated what was delivered.
    Consumed,
    /// The event (or its part past the delivered content) goes to the caller.
    Emit(StreamEvent),
    /// The restart differs from what was delivered.
    Diverged(String),
}

impl Matcher {
    fn new(delivered: &StreamAccumulator) -> Self {
        Self {
            text: 0,
            tools: vec![0; delivered.tool_calls().len()],
        }
    }

    fn complete(&self, delivered: &StreamAccumulator) -> bool {
        self.text == delivered.text().len()
            && self
                .tools
                .iter()
                .zip(delivered.tool_calls())
                .all(|(matched, call)| *matched == call.arguments.len())
    }

    fn feed(&mut self, delivered: &StreamAccumulator, event: StreamEvent) -> Fed {
        if self.complete(delivered) {
            return Fed::Emit(event);
        }
        match event {
            StreamEvent::TextDelta(text) => {
                let want = &delivered.text().as_bytes()[self.text..];
                let n = want.len().min(text.len());
                if text.as_bytes()[..n] != want[..n] {
                    return Fed::Diverged(format!(
                        "its text differs from the delivered text after {} characters",
                        chars_before(delivered.text(), self.text)
                    ));
                }
                self.text += n;
                if n == text.len() {
                    return Fed::Consumed;
                }
                if !delivered.tool_calls().is_empty() {
                    return Fed::Diverged(
                        "it goes on with text where the delivered answer called a tool".into(),
                    );
                }
                match text.get(n..) {
                    Some(rest) => Fed::Emit(StreamEvent::TextDelta(rest.to_owned())),
                    None => Fed::Diverged("its text splits a character".into()),
                }
            }
            StreamEvent::ToolCallDelta {
                index,
                name,
                arguments,
                ..
            } => {
                let i = index as usize;
                if self.text != delivered.text().len() {
                    return Fed::Diverged(format!(
                        "it calls a tool after {} of the {} characters delivered",
                        chars_before(delivered.text(), self.text),
                        delivered.text().chars().count()
                    ));
                }
                let Some(call) = delivered.tool_calls().get(i) else {
                    return Fed::Diverged(format!(
                        "it makes tool call {i}, which the delivered answer did not have"
                    ));
                };
                if let Some(name) = &name
                    && !call.name.is_empty()
                    && *name != call.name
                {
                    return Fed::Diverged(format!(
                        "tool call {i} calls `{name}`, not `{}`",
                        call.name
                    ));
                }
                if self.tools[..i]
                    .iter()
                    .zip(delivered.tool_calls())
                    .any(|(matched, call)| *matched != call.arguments.len())
                {
                    return Fed::Diverged(format!(
                        "tool call {i} starts before the earlier calls were reproduced"
                    ));
                }
                let want = &call.arguments.as_bytes()[self.tools[i]..];
                let n = want.len().min(arguments.len());
                if arguments.as_bytes()[..n] != want[..n] {
                    return Fed::Diverged(format!("tool call {i}'s arguments differ"));
                }
                self.tools[i] += n;
                if n == arguments.len() {
                    return Fed::Consumed;
                }
                if i + 1 < delivered.tool_calls().len() {
                    return Fed::Diverged(format!(
                        "tool call {i}'s arguments go on where another call followed"
                    ));
                }
                match arguments.get(n..) {
                    Some(rest) => Fed::Emit(StreamEvent::ToolCallDelta {
                        index,
                        id: None,
                        name: None,
                        arguments: rest.to_owned(),
                    }),
                    None => Fed::Diverged("its arguments split a character".into()),
                }
            }
            other => Fed::Emit(other),
        }
    }
}

impl RelayStream {
    pub(crate) fn new(
        prefix: Vec<StreamEvent>,
        inner: EventStream,
        walk: Walk,
        attempt: Attempt,
        upfront_usage: Option<Usage>,
        tokens_before: Option<u64>,
    ) -> Self {
        Self {
            prefix: prefix.into_iter(),
            state: Relay::Streaming(inner),
            walk,
            attempt,
            path: None,
            mode: Mode::Pass,
            delivered: StreamAccumulator::new(),
            complete: false,
            first_content: None,
            usage_done: None,
            usage_now: upfront_usage,
            tokens_before,
            original: None,
            pending: None,
            recovering: false,
            not_ready: None,
        }
    }

    /// Handles one event of the relayed stream; returns what the caller gets, if anything.
    fn on_event(&mut self, event: StreamEvent) -> Option<StreamEvent> {
        match event {
            // The caller already has a start; a recovery's start only says which model
            // answers from now on.
            StreamEvent::Start { model, .. } if self.path.is_some() => {
                model.map(|model| StreamEvent::Start {
                    id: None,
                    model: Some(model),
                })
            }
            StreamEvent::TextDelta(_) | StreamEvent::ToolCallDelta { .. } => {
                if self.path.is_some() && self.first_content.is_none() {
                    self.first_content =
                        Some(Instant::now().saturating_duration_since(self.attempt.started));
                }
                let out = match &mut self.mode {
                    Mode::Pass => event,
                    Mode::Continue { at } => {
                        match skip_repeated(self.delivered.text(), at, event) {
                            Some(event) => {
                                self.mode = Mode::Pass;
                                event
                            }
                            None => return None,
                        }
                    }
                    Mode::Restart(matcher) => match matcher.feed(&self.delivered, event) {
                        Fed::Consumed => return None,
                        Fed::Emit(event) => {
                            self.mode = Mode::Pass;
                            event
                        }
                        Fed::Diverged(reason) => return self.diverged(&reason),
                    },
                    Mode::Join(held) => {
                        let StreamEvent::TextDelta(text) = &event else {
                            // A tool call in the answer: the text held so far joins first.
                            return match self.join(true) {
                                Some(StreamEvent::Error(error)) => Some(StreamEvent::Error(error)),
                                Some(text) => {
                                    self.pending = self.on_event(event);
                                    Some(text)
                                }
                                None => self.on_event(event),
                            };
                        };
                        held.push_str(text);
                        return self.join(false);
                    }
                };
                // A content event: the accumulator fails only on error events.
                let _content = self.delivered.push(&out);
                Some(out)
            }
            StreamEvent::Usage(usage) => {
                self.usage_now = Some(usage);
                // Once recovering, the caller gets one usage summed over attempts at the end.
                (!self.recovering).then_some(event)
            }
            StreamEvent::Finish(_) if matches!(self.mode, Mode::Join(_)) => {
                // The answer ended while its text was held: join it, then finish.
                let joined = self.join(true);
                match joined {
                    Some(StreamEvent::Error(_)) => joined,
                    Some(text) => {
                        let finish = self.on_event(event);
                        self.pending = finish;
                        Some(text)
                    }
                    None => self.on_event(event),
                }
            }
            StreamEvent::Finish(_) => {
                if let Mode::Restart(matcher) = &self.mode
                    && !matcher.complete(&self.delivered)
                {
                    return self.diverged("it ended before reproducing the delivered answer");
                }
                self.complete = true;
                if let Some(path) = self.path {
                    self.walk
                        .record_success(&self.attempt, "", self.first_content);
                    let target = self.target_id();
                    tracing::event!(
                        target: "seawall::failover",
                        parent: self.walk.span.id(),
                        tracing::Level::INFO,
                        "seawall.target" = target.as_str(),
                        "seawall.recovery" = ?path,
                        "stream recovered"
                    );
                    self.update_record(RecoveryOutcome::Recovered { path, target });
                }
                Some(event)
            }
            StreamEvent::Error(error) if !self.complete => self.broke(error),
            other => Some(other),
        }
    }

    /// The relayed stream ended.
    fn on_end(&mut self) -> Option<StreamEvent> {
        if !self.complete {
            return self.broke(LlmError::new(
                ErrorKind::StreamTruncated,
                "the stream ended before the provider's end of message",
            ));
        }
        self.state = Relay::Done;
        let total = self.settle_usage();
        if self.recovering {
            return total.map(StreamEvent::Usage);
        }
        None
    }

    /// Adds the current attempt's usage to the sum.
    fn fold_usage(&mut self) {
        if let Some(usage) = self.usage_now.take() {
            self.walk.span.record_usage(usage, false);
            self.usage_done = Some(self.usage_done.unwrap_or_default().plus(usage));
            let charge = self.walk.charge(&self.attempt, usage);
            self.walk.trail.update(|trail| trail.charges.push(charge));
        }
    }

    /// Ends the usage count: the sum over attempts, also written to the trail.
    fn settle_usage(&mut self) -> Option<Usage> {
        self.fold_usage();
        let total = self.usage_done?;
        self.walk.span.record_usage(total, true);
        let before = self.tokens_before.unwrap_or(0);
        self.walk.trail.update(|trail| {
            trail.tokens_used = Some(before.saturating_add(total.total()));
        });
        Some(total)
    }

    fn target_id(&self) -> seawall_core::TargetId {
        self.walk.router.shared.targets[self.attempt.index]
            .id
            .clone()
    }

    fn update_record(&self, outcome: RecoveryOutcome) {
        self.walk.trail.update(|trail| {
            if let Some(record) = trail.recoveries.last_mut()
                && record.outcome == RecoveryOutcome::Pending
            {
                record.outcome = outcome;
            }
        });
    }

    /// The relayed stream broke with `error`.
    fn broke(&mut self, error: LlmError) -> Option<StreamEvent> {
        // Dropping the stream settles its target's rate limiter with what it reported.
        self.state = Relay::Done;
        self.fold_usage();
        let shared = Arc::clone(&self.walk.router.shared);
        if self.path.is_some() {
            self.walk.record_failure(&self.attempt, &error);
            self.update_record(RecoveryOutcome::Failed {
                reason: format!("the recovering stream broke too: {error}"),
            });
        }
        let verdict = self.walk.classify(&error);
        if !shared.recover_streams || verdict.disposition == Disposition::Fatal {
            let reason = error.to_string();
            self.original.get_or_insert(error);
            return self.give_up(&reason);
        }
        let target = self.target_id();
        self.walk.trail.update(|trail| {
            trail.recoveries.push(RecoveryRecord::new(
                target,
                error.to_string(),
                self.delivered.text().chars().count() as u64,
                self.delivered.content_events(),
                RecoveryOutcome::Pending,
            ));
        });
        self.original.get_or_insert(error);
        self.recovering = true;
        // The same target may finish the answer last, unless it went silent (a timeout
        // fails over, it is not retried in the same call).
        let index = self.attempt.index;
        if verdict.disposition == Disposition::Retry
            && !self.walk.plan[self.walk.next as usize..].contains(&index)
        {
            self.walk.plan.push(index);
        }
        self.next_recovery()
    }

    /// Picks the next target to recover on, or gives up.
    fn next_recovery(&mut self) -> Option<StreamEvent> {
        match self.walk.next_attempt() {
            Ok((attempt, service)) => {
                let shared = &self.walk.router.shared;
                let continuable = self.delivered.tool_calls().is_empty()
                    && !self.delivered.text().trim_end().is_empty();
                let path = match shared.continuation(attempt.index) {
                    Continuation::Prefill if continuable => RecoveryPath::Continuation,
                    Continuation::UserMessage if continuable => RecoveryPath::UserMessage,
                    _ => RecoveryPath::Restart,
                };
                self.attempt = attempt;
                self.state = Relay::Ready { service, path };
                None
            }
            Err(error) => self.give_up(&error.to_string()),
        }
    }

    /// A recovery attempt failed before its stream.
    fn attempt_failed(
        &mut self,
        error: &(dyn std::error::Error + 'static),
        path: RecoveryPath,
    ) -> Option<StreamEvent> {
        let verdict = self.walk.record_failure(&self.attempt, error);
        let tried = match path {
            RecoveryPath::Continuation => Some(Continuation::Prefill),
            RecoveryPath::UserMessage => Some(Continuation::UserMessage),
            _ => None,
        };
        if let Some(tried) = tried
            && verdict.cause == Cause::Provider(ErrorKind::InvalidRequest)
        {
            // A 400 to a continuation is the target refusing its form: remember it and
            // try the next form (a prefill, then a user message, then a restart) on the
            // same target, within the same hop.
            let shared = &self.walk.router.shared;
            let next = shared.refuse_continuation(self.attempt.index, tried);
            self.attempt.started = Instant::now();
            self.attempt.ready_by = self.walk.ready_by(self.attempt.started);
            let service = shared.targets[self.attempt.index].service.clone();
            self.state = Relay::Ready {
                service,
                path: match next {
                    Continuation::UserMessage => RecoveryPath::UserMessage,
                    _ => RecoveryPath::Restart,
                },
            };
            return None;
        }
        self.next_recovery()
    }

    /// Decides how a user-message continuation joins what was delivered, once it has held
    /// enough of the answer (or `done`): an answer that starts the reply over is matched
    /// like a restart; otherwise its repeat of the delivered end is dropped and the rest
    /// passed on. `None` while still holding.
    fn join(&mut self, done: bool) -> Option<StreamEvent> {
        let Mode::Join(held) = &mut self.mode else {
            return None;
        };
        if !done && held.chars().count() < JOIN_WINDOW {
            return None;
        }
        let held = std::mem::take(held);
        let delivered = self.delivered.text();
        let opening: String = delivered.trim_start().chars().take(JOIN_WINDOW).collect();
        let restarted = !opening.is_empty()
            && (held.trim_start().starts_with(&opening)
                || (done && opening.starts_with(held.trim_start()) && !held.trim().is_empty()));
        if restarted {
            let mut matcher = Matcher::new(&self.delivered);
            return match matcher.feed(&self.delivered, StreamEvent::TextDelta(held)) {
                Fed::Consumed => {
                    self.mode = Mode::Restart(matcher);
                    None
                }
                Fed::Emit(event) => {
                    self.mode = Mode::Pass;
                    let _content = self.delivered.push(&event);
                    Some(event)
                }
                Fed::Diverged(reason) => self.diverged(&reason),
            };
        }
        self.mode = Mode::Pass;
        let rest = after_overlap(delivered, &held);
        if rest.is_empty() {
            return None;
        }
        let event = StreamEvent::TextDelta(rest.to_owned());
        let _content = self.delivered.push(&event);
        Some(event)
    }

    /// A restart differs from what was delivered: the caller cannot get a coherent answer.
    fn diverged(&mut self, reason: &str) -> Option<StreamEvent> {
        self.state = Relay::Done;
        let reason = format!("the restart on {} diverged: {reason}", self.target_id());
        let error = LlmError::new(ErrorKind::StreamTruncated, reason.clone());
        self.walk.record(
            &self.attempt,
            AttemptOutcome::Failed {
                cause: Cause::Provider(ErrorKind::StreamTruncated),
                message: error.to_string(),
            },
            self.first_content,
        );
        self.give_up(&reason)
    }

    /// Ends the stream with the original failure, explained; the summed usage first.
    fn give_up(&mut self, reason: &str) -> Option<StreamEvent> {
        self.state = Relay::Done;
        self.update_record(RecoveryOutcome::Failed {
            reason: reason.to_owned(),
        });
        let original = self
            .original
            .take()
            .unwrap_or_else(|| LlmError::new(ErrorKind::StreamTruncated, "the stream broke"));
        let recovering = self.recovering;
        let error = if recovering {
            let mut error = LlmError::new(
                original.kind(),
                format!("{}; not recovered: {reason}", original.message()),
            );
            if let Some(status) = original.status() {
                error = error.with_status(status);
            }
            if let Some(provider) = original.provider() {
                error = error.with_provider(provider);
            }
            error.with_source(original)
        } else {
            original
        };
        let total = self.settle_usage();
        match total {
            Some(total) if recovering => {
                self.pending = Some(StreamEvent::Error(error));
                Some(StreamEvent::Usage(total))
            }
            _ => Some(StreamEvent::Error(error)),
        }
    }

    /// The request for a recovery attempt on `path`.
    fn recovery_request(&self, path: RecoveryPath) -> seawall_core::ChatRequest {
        let mut request = self.walk.attempt_request(&self.attempt);
        match path {
            RecoveryPath::Continuation => {
                let mut messages = Vec::with_capacity(request.messages.len() + 1);
                messages.extend(request.messages.iter().cloned());
                messages.push(Message::assistant(self.delivered.text().trim_end()));
                request.messages = messages.into();
            }
            RecoveryPath::UserMessage => {
                let mut messages = Vec::with_capacity(request.messages.len() + 2);
                messages.extend(request.messages.iter().cloned());
                messages.push(Message::assistant(self.delivered.text().trim_end()));
                messages.push(Message::user(CONTINUE_PROMPT));
                request.messages = messages.into();
            }
            _ => {}
        }
        request
    }

    /// Starts relaying a recovery attempt's response.
    fn start_relay(&mut self, mut response: ChatResponse, path: RecoveryPath) {
        let shared = &self.walk.router.shared;
        shared.learn_provider(self.attempt.index, response.provider, &response.model);
        self.usage_now = response.usage;
        let stream = response
            .stream
            .take()
            .unwrap_or_else(|| complete_as_events(response));
        self.path = Some(path);
        self.first_content = None;
        self.mode = match path {
            RecoveryPath::Continuation => {
                let at = self.delivered.text().trim_end().len();
                if at < self.delivered.text().len() {
                    Mode::Continue { at }
                } else {
                    Mode::Pass
                }
            }
            RecoveryPath::UserMessage => Mode::Join(String::new()),
            // A restart stitched on the delivered prefix is safe for any other path.
            _ => Mode::Restart(Matcher::new(&self.delivered)),
        };
        self.state = Relay::Streaming(stream);
    }
}

/// How much of a user-message continuation is read before deciding how it joins.
const JOIN_WINDOW: usize = 48;
/// The shortest repeat of the delivered end that is dropped (shorter ones may be chance).
const MIN_OVERLAP: usize = 4;
/// The longest repeat of the delivered end looked for, in bytes.
const MAX_OVERLAP: usize = 1_024;

/// What of `answer` follows `delivered`: past the longest start of it (of at least
/// [`MIN_OVERLAP`] characters) that repeats the delivered end; whitespace that repeats the
/// delivered trailing whitespace is dropped as well.
fn after_overlap<'a>(delivered: &str, answer: &'a str) -> &'a str {
    let longest = answer
        .char_indices()
        .map(|(i, c)| i + c.len_utf8())
        // A repeat is of the last words, not of pages: bounded, so the search is too.
        .take_while(|&end| end <= delivered.len().min(MAX_OVERLAP))
        .filter(|&end| answer[..end].chars().count() >= MIN_OVERLAP)
        .filter(|&end| delivered.ends_with(&answer[..end]))
        .last();
    let rest = &answer[longest.unwrap_or(0)..];
    if delivered.ends_with(char::is_whitespace) {
        rest.trim_start()
    } else {
        rest
    }
}

/// Drops the part of a continuation's first text that repeats the delivered whitespace
/// `delivered[*at..]` left out of the prefill. `None` while the event only repeats it;
/// otherwise what the caller gets (everything else passes unchanged).
fn skip_repeated(delivered: &str, at: &mut usize, event: StreamEvent) -> Option<StreamEvent> {
    let StreamEvent::TextDelta(text) = event else {
        return Some(event);
    };
    let tail = delivered.get(*at..).unwrap_or_default();
    let mut n = text
        .bytes()
        .zip(tail.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    *at += n;
    if n == text.len() {
        return None;
    }
    if n == 0 {
        return Some(StreamEvent::TextDelta(text));
    }
    Some(StreamEvent::TextDelta(text[n..].to_owned()))
}

/// A complete response as the events of a stream (a target may answer a streamed
/// request in one piece).
fn complete_as_events(response: ChatResponse) -> EventStream {
    let mut events = Vec::with_capacity(2 + response.message.tool_calls.len());
    if !response.message.text.is_empty() {
        events.push(StreamEvent::TextDelta(response.message.text));
    }
    for (index, call) in response.message.tool_calls.into_iter().enumerate() {
        events.push(StreamEvent::ToolCallDelta {
            index: u32::try_from(index).unwrap_or(u32::MAX),
            id: Some(call.id),
            name: Some(call.name),
            arguments: call.arguments,
        });
    }
    events.push(StreamEvent::Finish(
        response.finish_reason.unwrap_or(FinishReason::Stop),
    ));
    EventStream::from_events(events)
}

impl Stream for RelayStream {
    type Item = StreamEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamEvent>> {
        let this = self.get_mut();
        loop {
            if let Some(event) = this.pending.take() {
                return Poll::Ready(Some(event));
            }
            if let Some(event) = this.prefix.next() {
                if let Some(out) = this.on_event(event) {
                    return Poll::Ready(Some(out));
                }
                continue;
            }
            match mem::replace(&mut this.state, Relay::Done) {
                Relay::Streaming(mut stream) => match this
                    .walk
                    .span
                    .in_attempt(|| Pin::new(&mut stream).poll_next(cx))
                {
                    Poll::Pending => {
                        this.state = Relay::Streaming(stream);
                        return Poll::Pending;
                    }
                    Poll::Ready(Some(event)) => {
                        this.state = Relay::Streaming(stream);
                        if let Some(out) = this.on_event(event) {
                            return Poll::Ready(Some(out));
                        }
                    }
                    Poll::Ready(None) => {
                        drop(stream);
                        if let Some(out) = this.on_end() {
                            return Poll::Ready(Some(out));
                        }
                    }
                },
                Relay::Ready { mut service, path } => {
                    let ready_by = this.attempt.ready_by;
                    match poll_ready_by(&mut service, cx, ready_by, &mut this.not_ready) {
                        Poll::Pending => {
                            this.state = Relay::Ready { service, path };
                            return Poll::Pending;
                        }
                        Poll::Ready(Readiness::Ready) => {
                            let future = this
                                .walk
                                .span
                                .in_attempt(|| service.call(this.recovery_request(path)));
                            this.state = Relay::Calling { future, path };
                        }
                        Poll::Ready(Readiness::Failed(error)) => {
                            if let Some(out) = this.attempt_failed(&*error, path) {
                                return Poll::Ready(Some(out));
                            }
                        }
                        Poll::Ready(Readiness::NotReady) => {
                            this.walk.skip_not_ready(&this.attempt);
                            if let Some(out) = this.next_recovery() {
                                return Poll::Ready(Some(out));
                            }
                        }
                    }
                }
                Relay::Calling { mut future, path } => {
                    match this.walk.span.in_attempt(|| future.as_mut().poll(cx)) {
                        Poll::Pending => {
                            this.state = Relay::Calling { future, path };
                            return Poll::Pending;
                        }
                        Poll::Ready(Ok(response)) => this.start_relay(response, path),
                        Poll::Ready(Err(error)) => {
                            if let Some(out) = this.attempt_failed(&*error, path) {
                                return Poll::Ready(Some(out));
                            }
                        }
                    }
                }
                Relay::Done => return Poll::Ready(None),
            }
        }
    }
}

impl fmt::Debug for RelayStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            Relay::Streaming(_) => "streaming",
            Relay::Ready { .. } => "ready",
            Relay::Calling { .. } => "calling",
            Relay::Done => "done",
        };
        f.debug_struct("RelayStream")
            .field("state", &state)
            .field("path", &self.path)
            .field("complete", &self.complete)
            .field("delivered_chars", &self.delivered.text().len())
            .finish_non_exhaustive()
    }
}
