//! Where alerts go: the log (one JSON line on stderr), the metrics, and an optional
//! webhook that receives each alert as a JSON POST, retried a bounded number of times.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use seawall::budget::{Alert, AlertKind, Amount};
use seawall_providers::http::HttpClient;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Alerts waiting for the webhook beyond this are dropped (and counted).
const QUEUE: usize = 1_024;
/// Attempts per alert, and the wait before each retry.
const BACKOFF: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(2)];
/// How long one POST may take.
const POST_TIMEOUT: Duration = Duration::from_secs(5);

/// The kinds of alert, as the metrics name them: the budget layer's three, then a
/// target's breaker opening and a limiter queue growing past its threshold.
const KINDS: [&str; 5] = [
    "spend",
    "expensive_call",
    "budget_share",
    "breaker_open",
    "queue_growth",
];

/// An operational alert: about a target, not about spending.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TargetAlert {
    /// The target's health breaker opened, for this long (`None`: until reset).
    BreakerOpen(Option<Duration>),
    /// The target's limiter queue holds this many calls, at or past the threshold.
    QueueGrowth { waiting: usize, threshold: usize },
}

/// The alert outlet: cheap to clone, callable from any task, never blocking it: the log line
/// and the webhook POST are written by tasks of their own (`start`), from bounded queues
/// (beyond [`QUEUE`] waiting alerts, further ones are dropped: from the log silently, from
/// the webhook counted as undelivered).
#[derive(Clone)]
pub(crate) struct AlertOut(Arc<Inner>);

struct Inner {
    log: mpsc::Sender<Value>,
    webhook: Option<mpsc::Sender<Value>>,
    /// The queues' far ends, until `serve` starts the tasks that empty them.
    receivers: Mutex<Option<Receivers>>,
    /// Alerts raised, by kind ([`KINDS`]).
    raised: [AtomicU64; KINDS.len()],
    delivered: AtomicU64,
    undelivered: AtomicU64,
}

struct Receivers {
    log: mpsc::Receiver<Value>,
    webhook: Option<(mpsc::Receiver<Value>, String)>,
}

impl AlertOut {
    pub(crate) fn new(webhook: Option<&str>) -> Self {
        let (log, log_receiver) = mpsc::channel(QUEUE);
        let (webhook, webhook_receiver) = match webhook {
            Some(url) => {
                let (sender, receiver) = mpsc::channel(QUEUE);
                (Some(sender), Some((receiver, url.to_owned())))
            }
            None => (None, None),
        };
        Self(Arc::new(Inner {
            log,
            webhook,
            receivers: Mutex::new(Some(Receivers {
                log: log_receiver,
                webhook: webhook_receiver,
            })),
            raised: Default::default(),
            delivered: AtomicU64::new(0),
            undelivered: AtomicU64::new(0),
        }))
    }

    /// Counts `alert` and queues it for the log and the webhook; never waits.
    pub(crate) fn send(&self, alert: &Alert) {
        let kind = match alert.kind {
            AlertKind::Spend { .. } => 0,
            AlertKind::ExpensiveCall { .. } => 1,
            _ => 2,
        };
        self.raise(kind, alert_json(alert));
    }

    /// Counts an alert about `target` and queues it for the log and the webhook.
    pub(crate) fn target(&self, target: &str, alert: TargetAlert) {
        let at = std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (kind, mut body) = match alert {
            TargetAlert::BreakerOpen(open_for) => (
                3,
                json!({
                    "target": target,
                    "open_for_secs": open_for.map(|d| d.as_secs_f64()),
                    "message": match open_for {
                        Some(d) => format!("the breaker of {target} opened for {:.1} s", d.as_secs_f64()),
                        None => format!("the breaker of {target} was forced open"),
                    },
                }),
            ),
            TargetAlert::QueueGrowth { waiting, threshold } => (
                4,
                json!({
                    "target": target,
                    "waiting": waiting,
                    "threshold": threshold,
                    "message": format!(
                        "{waiting} calls wait in the rate limiter of {target} (threshold {threshold})"
                    ),
                }),
            ),
        };
        body["kind"] = json!(KINDS[kind]);
        body["at"] = json!(at);
        self.raise(kind, body);
    }

    fn raise(&self, kind: usize, body: Value) {
        self.0.raised[kind].fetch_add(1, Relaxed);
        if let Some(webhook) = &self.0.webhook
            && webhook.try_send(body.clone()).is_err()
        {
            self.0.undelivered.fetch_add(1, Relaxed);
        }
        let _ = self.0.log.try_send(body);
    }

    /// Alerts raised by kind, delivered to the webhook, and given up on.
    pub(crate) fn counts(&self) -> (Vec<(&'static str, u64)>, u64, u64) {
        (
            KINDS
                .iter()
                .zip(&self.0.raised)
                .map(|(kind, count)| (*kind, count.load(Relaxed)))
                .collect(),
            self.0.delivered.load(Relaxed),
            self.0.undelivered.load(Relaxed),
        )
    }

    /// Starts the tasks that write queued alerts to stderr (one JSON line each) and POST
    /// them to the webhook, if one is configured.
    pub(crate) fn start(&self, client: HttpClient) {
        let taken = self
            .0
            .receivers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(Receivers { mut log, webhook }) = taken else {
            return;
        };
        tokio::spawn(async move {
            // Async writes: a stderr nobody reads blocks this task, not a server thread.
            let mut stderr = tokio::io::stderr();
            while let Some(alert) = log.recv().await {
                let mut line = json!({ "event": "seawall_alert", "alert": alert }).to_string();
                line.push('\n');
                if stderr.write_all(line.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
        if let Some((mut receiver, url)) = webhook {
            let out = self.clone();
            tokio::spawn(async move {
                while let Some(body) = receiver.recv().await {
                    let counter = if deliver(&client, &url, &body).await {
                        &out.0.delivered
                    } else {
                        &out.0.undelivered
                    };
                    counter.fetch_add(1, Relaxed);
                }
            });
        }
    }
}

/// POSTs `body` to `url`, retrying a failure (no answer in time, a connection error, a
/// status other than 2xx) after each wait of [`BACKOFF`].
async fn deliver(client: &HttpClient, url: &str, body: &Value) -> bool {
    let bytes = Bytes::from(body.to_string());
    for wait in std::iter::once(None).chain(BACKOFF.map(Some)) {
        if let Some(wait) = wait {
            tokio::time::sleep(wait).await;
        }
        let Ok(request) = Request::builder()
            .method(Method::POST)
            .uri(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, "seawall-gateway")
            .body(Full::new(bytes.clone()))
        else {
            return false;
        };
        if let Ok(Ok(response)) = tokio::time::timeout(POST_TIMEOUT, client.request(request)).await
            && response.status().is_success()
        {
            return true;
        }
    }
    false
}

fn amount(amount: Amount) -> Value {
    match amount {
        Amount::Tokens(tokens) => json!({ "tokens": tokens }),
        Amount::Usd(cost) => json!({ "usd": cost.usd() }),
        _ => Value::Null,
    }
}

/// The alert as the webhook and the log receive it.
fn alert_json(alert: &Alert) -> Value {
    let at = alert
        .at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut body = match &alert.kind {
        AlertKind::Spend {
            window,
            spent,
            threshold,
        } => json!({
            "window": window.as_str(),
            "spent_usd": spent.usd(),
            "threshold_usd": threshold.usd(),
        }),
        AlertKind::ExpensiveCall {
            cost,
            threshold,
            model,
        } => json!({
            "model": model,
            "cost_usd": cost.usd(),
            "threshold_usd": threshold.usd(),
        }),
        AlertKind::BudgetShare {
            budget,
            value,
            window,
            used,
            limit,
            share,
        } => json!({
            "budget": budget,
            "key": value,
            "window": window.as_str(),
            "used": amount(*used),
            "limit": amount(*limit),
            "share": share,
        }),
        _ => json!({}),
    };
    body["kind"] = json!(alert.kind.as_str());
    body["at"] = json!(at);
    body["message"] = json!(alert.to_string());
    body
}
