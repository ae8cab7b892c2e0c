//! Breakers and capacity cooldowns shared through Redis: a target opened or parked by one
//! replica is open or parked on all, and half-open probes are counted over all of them.

use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures_core::Stream;
use redis::Script;
use seawall::breaker::{BreakerHandle, BreakerPeers, PeerChange, WeakBreakerHandle};

use crate::client::RedisState;

static PUBLISH: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("breaker_publish.lua")));
static READ: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("breaker_read.lua")));

/// How long the listener waits before subscribing again after losing Redis.
const RESUBSCRIBE: Duration = Duration::from_millis(500);

/// The shared breakers of one [`RedisState`], for the listener to reach. Weak: a breaker
/// dropped by its owner stops being followed.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    breakers: Mutex<Vec<Weak<Peer>>>,
    listening: AtomicBool,
}

/// One breaker's link to the others.
#[derive(Debug)]
struct Peer {
    state: RedisState,
    key: String,
    target: String,
    probes: u32,
    handle: WeakBreakerHandle,
    /// Probe slots claimed from Redis and not used yet.
    permits: AtomicU32,
    claiming: AtomicBool,
}

/// The [`BreakerPeers`] a shared breaker is given.
#[derive(Debug)]
struct Link(Arc<Peer>);

fn micros(duration: Option<Duration>) -> i64 {
    duration.map_or(-1, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn duration(micros: i64) -> Option<Duration> {
    u64::try_from(micros).ok().map(Duration::from_micros)
}

impl RedisState {
    /// Shares `handle`'s breaker with the breakers of the same target (by name) in every
    /// process on this Redis: an open, a close or a capacity cooldown decided anywhere
    /// holds everywhere (carried by pub/sub, within a round trip), and at most
    /// `half_open_probes` probes (the breaker's own setting) are sent over all of them
    /// when a break ends. A process that joins late, or gets Redis back, reads where each
    /// breaker stands.
    ///
    /// Redis down: each process's breaker decides alone; with
    /// [`FailMode::Closed`](crate::FailMode::Closed) a breaker whose break ended sends no
    /// probe until Redis answers.
    pub fn share_breaker(&self, handle: &BreakerHandle, half_open_probes: u32) {
        let target = handle.target().as_str().to_owned();
        let peer = Arc::new(Peer {
            state: self.clone(),
            key: self.key("breaker", &target),
            target,
            probes: half_open_probes.max(1),
            handle: handle.downgrade(),
            permits: AtomicU32::new(0),
            claiming: AtomicBool::new(false),
        });
        handle.share(Arc::new(Link(Arc::clone(&peer))));
        let registry = self.breakers();
        registry
            .breakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::downgrade(&peer));
        if !registry.listening.swap(true, Ordering::AcqRel) {
            tokio::spawn(listen(self.clone()));
        } else {
            tokio::spawn(async move { peer.read(false).await });
        }
    }

    fn channel(&self) -> String {
        self.tagged("breakers", "changes")
    }
}

impl Peer {
    /// Asks Redis where the breaker stands (taking a probe slot if `probe` and the break is
    /// over) and follows it.
    async fn read(&self, probe: bool) {
        let mut invocation = READ.prepare_invoke();
        invocation.key(&self.key).arg(u8::from(probe));
        let Some(handle) = self.handle.upgrade() else {
            return;
        };
        match self.state.run::<Vec<i64>>(&invocation).await {
            Ok(reply) if reply.len() == 3 => {
                if let Some(wait) = duration(reply[2]).filter(|w| !w.is_zero()) {
                    handle.adopt(PeerChange::Cooldown { wait });
                }
                match reply[0] {
                    0 => {
                        self.permits.fetch_add(1, Ordering::AcqRel);
                    }
                    1 => handle.adopt(PeerChange::Opened {
                        open_for: duration(reply[1]),
                    }),
                    2 => handle.adopt(PeerChange::Closed),
                    _ => {}
                }
            }
            Ok(_) => {}
            Err(_) => {
                if probe && self.state.without_redis().is_ok() {
                    self.permits.fetch_add(1, Ordering::AcqRel);
                }
            }
        }
    }

    fn publish(self: &Arc<Self>, change: PeerChange) {
        let (kind, wait) = match change {
            PeerChange::Opened { open_for } => ("open", micros(open_for)),
            PeerChange::Closed => ("closed", 0),
            PeerChange::Cooldown { wait } => ("cooldown", micros(Some(wait))),
            _ => return,
        };
        if kind != "cooldown" {
            self.permits.store(0, Ordering::Release);
        }
        let peer = Arc::clone(self);
        tokio::spawn(async move {
            let mut invocation = PUBLISH.prepare_invoke();
            invocation
                .key(&peer.key)
                .arg(kind)
                .arg(wait)
                .arg(peer.probes)
                .arg(peer.state.channel())
                .arg(peer.state.process_id())
                .arg(&peer.target);
            // Lost while Redis is away: each process then decides alone.
            let _ = peer.state.run::<i64>(&invocation).await;
        });
    }

    /// A peer's message: `sender \t kind \t µs \t target`.
    fn follow(&self, kind: &str, wait: i64) {
        let Some(handle) = self.handle.upgrade() else {
            return;
        };
        let change = match kind {
            "open" => PeerChange::Opened {
                open_for: duration(wait),
            },
            "closed" => PeerChange::Closed,
            "cooldown" => match duration(wait) {
                Some(wait) => PeerChange::Cooldown { wait },
                None => return,
            },
            _ => return,
        };
        if kind != "cooldown" {
            self.permits.store(0, Ordering::Release);
        }
        handle.adopt(change);
    }
}

impl BreakerPeers for Link {
    fn publish(&self, change: PeerChange) {
        self.0.publish(change);
    }

    fn claim_probe(&self) -> bool {
        let peer = &self.0;
        if peer
            .permits
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| p.checked_sub(1))
            .is_ok()
        {
            return true;
        }
        // Ask for a slot in the background; the call after the answer may probe.
        if !peer.claiming.swap(true, Ordering::AcqRel) {
            let peer = Arc::clone(peer);
            tokio::spawn(async move {
                peer.read(true).await;
                peer.claiming.store(false, Ordering::Release);
            });
        }
        false
    }
}

/// Follows the other processes' breakers: subscribes, reads where every breaker stands,
/// then applies each change as it is published; again after every lost connection.
async fn listen(state: RedisState) {
    let channel = state.channel();
    let me = state.process_id().to_owned();
    loop {
        if let Ok(mut pubsub) = state.client().get_async_pubsub().await
            && pubsub.subscribe(&channel).await.is_ok()
        {
            let peers = state.breakers_now();
            if peers.is_empty() {
                state.breakers().listening.store(false, Ordering::Release);
                return;
            }
            for peer in peers {
                peer.read(false).await;
            }
            let mut messages = pin!(pubsub.into_on_message());
            while let Some(message) =
                std::future::poll_fn(|cx| messages.as_mut().poll_next(cx)).await
            {
                let Ok(text) = message.get_payload::<String>() else {
                    continue;
                };
                let mut fields = text.splitn(4, '\t');
                let (Some(sender), Some(kind), Some(wait), Some(target)) =
                    (fields.next(), fields.next(), fields.next(), fields.next())
                else {
                    continue;
                };
                if sender == me {
                    continue;
                }
                let wait = wait.parse().unwrap_or(0);
                for peer in state.breakers_now() {
                    if peer.target == target {
                        peer.follow(kind, wait);
                    }
                }
            }
        }
        tokio::time::sleep(RESUBSCRIBE).await;
    }
}

impl RedisState {
    /// The breakers still alive (forgetting the others).
    fn breakers_now(&self) -> Vec<Arc<Peer>> {
        let mut breakers = self
            .breakers()
            .breakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        breakers.retain(|peer| peer.strong_count() > 0);
        breakers.iter().filter_map(Weak::upgrade).collect()
    }
}
