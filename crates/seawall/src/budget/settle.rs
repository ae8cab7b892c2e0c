//! Settlement of a reservation with what the response says was spent, including usage
//! that arrives at the end of a stream.

use std::fmt;

use seawall_core::{
    CacheStatus, ChatResponse, Cost, LlmResponse, StreamEvent, StreamWatcher, Usage,
};

use super::hold::{BudgetHold, Spent};
use super::store::BudgetStore;

/// A response the budget layer can settle its reservation with.
pub trait Settle: LlmResponse + Sized {
    /// Settles `hold` with what this response spent, now or, for a stream, when the stream
    /// ends or is dropped; records the cost where the caller finds it.
    fn settle<St: BudgetStore>(&mut self, hold: BudgetHold<St>);
}

/// A complete response settles at once with its usage, and carries its cost in
/// [`ChatResponse::cost`] and its trail. A stream settles when it ends: with its last
/// `Usage` event, or, when its caller drops it or it ends without one, with an estimate
/// from the content delivered; its cost lands in the call's trail recorder. An answer given
/// again (a cache hit, a replay) spent nothing.
impl Settle for ChatResponse {
    fn settle<St: BudgetStore>(&mut self, mut hold: BudgetHold<St>) {
        if let Some(downgrade) = hold.downgrade() {
            self.trail.downgrade = Some(downgrade);
        }
        let replayed = matches!(
            self.trail.cache,
            Some(CacheStatus::Hit | CacheStatus::Stale | CacheStatus::Replayed)
        );
        match self.stream.take() {
            Some(mut stream) if !replayed => {
                stream.watch(SettleWatcher {
                    hold: Some(hold),
                    usage: self.usage,
                    chars: 0,
                    deltas: 0,
                    finished: false,
                });
                self.stream = Some(stream);
            }
            stream => {
                let spent = match (replayed, self.usage) {
                    (true, _) => Spent::Nothing,
                    (false, Some(usage)) => Spent::Reported {
                        usage,
                        model: (!self.model.is_empty()).then(|| self.model.clone()),
                    },
                    (false, None) => Spent::AsReserved,
                };
                let cost = hold.settle(spent, Some(&*self.trail));
                self.cost = cost;
                self.trail.cost = cost;
                self.stream = stream;
            }
        }
    }
}

/// A raw HTTP response settles at once: nothing for a failure, the `Usage` extension a layer
/// below set, or, without one, as reserved. Its cost is set as a [`Cost`] extension.
impl<B> Settle for http::Response<B> {
    fn settle<St: BudgetStore>(&mut self, mut hold: BudgetHold<St>) {
        let spent = match (self.failure(), self.usage()) {
            (Some(_), _) => Spent::Nothing,
            (None, Some(usage)) => Spent::Reported { usage, model: None },
            (None, None) => Spent::AsReserved,
        };
        if let Some(cost) = hold.settle(spent, None) {
            self.extensions_mut().insert::<Cost>(cost);
        }
    }
}

/// Watches a stream and settles the reservation when it ends, fails or is dropped.
struct SettleWatcher<St: BudgetStore> {
    hold: Option<BudgetHold<St>>,
    usage: Option<Usage>,
    chars: u64,
    deltas: u64,
    finished: bool,
}

impl<St: BudgetStore> SettleWatcher<St> {
    fn settle(&mut self, ended: Option<bool>) {
        let Some(mut hold) = self.hold.take() else {
            return;
        };
        let (usage, chars, deltas) = (self.usage, self.chars, self.deltas);
        let spent = match (ended, usage) {
            (Some(true), Some(usage)) => Spent::Reported { usage, model: None },
            (Some(false), _) => Spent::Broken {
                usage,
                chars,
                deltas,
            },
            _ => Spent::Abandoned {
                usage,
                chars,
                deltas,
            },
        };
        hold.settle(spent, None);
    }
}

impl<St: BudgetStore> StreamWatcher for SettleWatcher<St> {
    fn on_event(&mut self, event: &StreamEvent) {
        match event {
            StreamEvent::TextDelta(text) => {
                self.deltas += 1;
                self.chars += text.chars().count() as u64;
            }
            StreamEvent::ToolCallDelta { arguments, .. } => {
                self.deltas += 1;
                self.chars += arguments.chars().count() as u64;
            }
            StreamEvent::Usage(usage) => self.usage = Some(*usage),
            StreamEvent::Finish(_) => self.finished = true,
            StreamEvent::Error(_) => self.settle(Some(false)),
            _ => {}
        }
    }

    fn on_end(&mut self) {
        let finished = self.finished;
        self.settle(Some(finished));
    }
}

impl<St: BudgetStore> Drop for SettleWatcher<St> {
    fn drop(&mut self) {
        // The caller went away mid-stream: charged for what the provider produced.
        self.settle(None);
    }
}

impl<St: BudgetStore> fmt::Debug for SettleWatcher<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SettleWatcher")
            .field("usage", &self.usage)
            .field("deltas", &self.deltas)
            .finish_non_exhaustive()
    }
}
