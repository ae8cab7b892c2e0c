//! The classification table, row by row: every `ErrorKind`, every layer-local rejection,
//! I/O errors, wrapped chains and the server's `x-should-retry` override.

use std::error::Error;
use std::fmt;
use std::io;
use std::time::Duration;

use seawall_core::{
    AllTargetsFailed, AttemptOutcome, AttemptRecord, BoxError, Cause, CircuitOpen, ClassifyPolicy,
    ContentFilterPolicy, DeadlineExceeded, Disposition, ErrorKind, InvalidRequest, LlmError,
    OpenReason, QuotaSnapshot, QuotaWindow, RateLimitRejected, RejectReason, RetryHints, TimedOut,
    TimeoutKind, classify, classify_with,
};

use Disposition::{Failover, Fatal, Retry};

#[test]
fn every_error_kind_has_its_row() {
    // (kind, disposition, health failure, out of capacity)
    let table = [
        (ErrorKind::RateLimited, Retry, false, true),
        (ErrorKind::QuotaExhausted, Failover, false, true),
        (ErrorKind::Overloaded, Retry, true, false),
        (ErrorKind::Server, Retry, true, false),
        (ErrorKind::Transient, Retry, false, false),
        (ErrorKind::Timeout, Failover, true, false),
        (ErrorKind::Connect, Retry, true, false),
        (ErrorKind::Auth, Failover, true, false),
        (ErrorKind::Permission, Failover, true, false),
        (ErrorKind::NotFound, Failover, true, false),
        (ErrorKind::InvalidRequest, Fatal, false, false),
        (ErrorKind::ContextLengthExceeded, Failover, false, false),
        (ErrorKind::ContentFiltered, Fatal, false, false),
        (ErrorKind::RequestTooLarge, Failover, false, false),
        (ErrorKind::Decode, Failover, true, false),
        (ErrorKind::StreamTruncated, Retry, true, false),
    ];
    for (kind, disposition, health, capacity) in table {
        let verdict = classify(&LlmError::new(kind, "x"));
        assert_eq!(verdict.disposition, disposition, "{kind:?}");
        assert_eq!(verdict.health_failure, health, "{kind:?} health");
        assert_eq!(verdict.out_of_capacity, capacity, "{kind:?} capacity");
        assert_eq!(verdict.cause, Cause::Provider(kind));
    }
}

#[test]
fn statuses_map_to_kinds_as_designed() {
    let table = [
        (400, ErrorKind::InvalidRequest),
        (401, ErrorKind::Auth),
        (402, ErrorKind::QuotaExhausted),
        (403, ErrorKind::Permission),
        (404, ErrorKind::NotFound),
        (408, ErrorKind::Transient),
        (409, ErrorKind::Transient),
        (413, ErrorKind::RequestTooLarge),
        (422, ErrorKind::InvalidRequest),
        (429, ErrorKind::RateLimited),
        (500, ErrorKind::Server),
        (502, ErrorKind::Server),
        (503, ErrorKind::Overloaded),
        (504, ErrorKind::Timeout),
        (529, ErrorKind::Overloaded),
    ];
    for (status, kind) in table {
        assert_eq!(ErrorKind::from_status(status), kind, "{status}");
    }
    // The retry table of the design, by status: retry 408, 409, 429, 5xx, 529; never
    // 400/401/403/404/413/422 on the same target.
    for status in [408, 409, 429, 500, 502, 503, 529] {
        let verdict = classify(&LlmError::new(ErrorKind::from_status(status), ""));
        assert_eq!(verdict.disposition, Retry, "{status}");
    }
    for status in [400, 401, 403, 404, 413, 422] {
        let verdict = classify(&LlmError::new(ErrorKind::from_status(status), ""));
        assert_ne!(verdict.disposition, Retry, "{status}");
    }
}

#[test]
fn hints_are_carried_into_the_verdict() {
    let error = LlmError::new(ErrorKind::RateLimited, "slow down").with_hints(
        RetryHints::default()
            .with_retry_after(Duration::from_millis(1500))
            .with_quota_reset(Duration::from_secs(6)),
    );
    let verdict = classify(&error);
    assert_eq!(verdict.retry_after, Some(Duration::from_millis(1500)));
    assert_eq!(verdict.quota_reset, Some(Duration::from_secs(6)));
    assert_eq!(verdict.server_wait(), Some(Duration::from_secs(6)));
}

#[test]
fn quota_reset_falls_back_to_the_exhausted_window_of_the_snapshot() {
    let quota = QuotaSnapshot::default()
        .with_requests(QuotaWindow::new(
            Some(60),
            Some(12),
            Some(Duration::from_secs(1)),
        ))
        .with_tokens(QuotaWindow::new(
            Some(30_000),
            Some(0),
            Some(Duration::from_millis(644)),
        ));
    let verdict = classify(&LlmError::new(ErrorKind::RateLimited, "").with_quota(quota));
    assert_eq!(verdict.quota_reset, Some(Duration::from_millis(644)));
}

#[test]
fn x_should_retry_overrides_the_status() {
    let hint = |should_retry| RetryHints::default().with_should_retry(should_retry);
    // 400 + x-should-retry: true is retried (the SDKs do).
    let verdict = classify(&LlmError::new(ErrorKind::InvalidRequest, "").with_hints(hint(true)));
    assert_eq!(verdict.disposition, Retry);
    // 503 + x-should-retry: false is not retried on the same target.
    let verdict = classify(&LlmError::new(ErrorKind::Overloaded, "").with_hints(hint(false)));
    assert_eq!(verdict.disposition, Failover);
    // A fatal verdict stays fatal.
    let verdict = classify(&LlmError::new(ErrorKind::InvalidRequest, "").with_hints(hint(false)));
    assert_eq!(verdict.disposition, Fatal);
}

#[test]
fn content_filter_policy_decides_between_return_and_failover() {
    let error = LlmError::new(ErrorKind::ContentFiltered, "blocked");
    let failover = ClassifyPolicy::default().content_filter(ContentFilterPolicy::Failover);
    assert_eq!(classify(&error).disposition, Fatal);
    assert_eq!(classify_with(&error, &failover).disposition, Failover);
}

fn attempt() -> AttemptRecord {
    AttemptRecord::new(
        "openai/gpt-4o".into(),
        "gpt-4o",
        AttemptOutcome::Failed {
            cause: Cause::Provider(ErrorKind::Overloaded),
            message: "overloaded".into(),
        },
    )
    .timed(Duration::ZERO, Duration::from_millis(20), None)
}

#[test]
fn layer_local_rejections_are_never_health_failures() {
    let rows: Vec<(BoxError, Disposition, Cause, bool, Option<Duration>)> = vec![
        (
            Box::new(CircuitOpen::new(
                "anthropic/claude".into(),
                OpenReason::Unhealthy,
                Duration::from_secs(3),
            )),
            Failover,
            Cause::CircuitOpen,
            false,
            Some(Duration::from_secs(3)),
        ),
        (
            Box::new(RateLimitRejected::new(
                "openai/gpt-4o".into(),
                RejectReason::PastDeadline {
                    wait: Duration::from_secs(4),
                    remaining: Duration::from_secs(1),
                },
            )),
            Failover,
            Cause::RateLimitRejected,
            false,
            Some(Duration::from_secs(4)),
        ),
        (
            Box::new(RateLimitRejected::new(
                "openai/gpt-4o".into(),
                RejectReason::NeverFits {
                    requested: 50_000,
                    capacity: 30_000,
                },
            )),
            Failover,
            Cause::RateLimitRejected,
            false,
            None,
        ),
        (
            Box::new(RateLimitRejected::new(
                "openai/gpt-4o".into(),
                RejectReason::QueueFull { capacity: 64 },
            )),
            Failover,
            Cause::RateLimitRejected,
            false,
            None,
        ),
        (
            Box::new(TimedOut::new(TimeoutKind::Attempt, Duration::from_secs(30))),
            Failover,
            Cause::TimedOut(TimeoutKind::Attempt),
            true,
            None,
        ),
        (
            Box::new(TimedOut::new(
                TimeoutKind::FirstToken,
                Duration::from_secs(5),
            )),
            Failover,
            Cause::TimedOut(TimeoutKind::FirstToken),
            true,
            None,
        ),
        (
            Box::new(TimedOut::new(TimeoutKind::Idle, Duration::from_secs(5))),
            Failover,
            Cause::TimedOut(TimeoutKind::Idle),
            true,
            None,
        ),
        (
            Box::new(DeadlineExceeded::new(Duration::from_secs(60))),
            Fatal,
            Cause::DeadlineExceeded,
            false,
            None,
        ),
        (
            Box::new(AllTargetsFailed::new(vec![attempt()])),
            Fatal,
            Cause::AllTargetsFailed,
            false,
            None,
        ),
        (
            Box::new(InvalidRequest {
                field: "messages".into(),
                problem: "must hold at least one message".into(),
            }),
            Fatal,
            Cause::InvalidRequest,
            false,
            None,
        ),
    ];
    for (error, disposition, cause, health, wait) in rows {
        let verdict = classify(&*error);
        assert_eq!(verdict.disposition, disposition, "{error}");
        assert_eq!(verdict.cause, cause, "{error}");
        assert_eq!(verdict.health_failure, health, "{error}");
        assert_eq!(verdict.retry_after, wait, "{error}");
        assert!(!verdict.out_of_capacity, "{error}");
    }
}

#[test]
fn io_errors_split_into_retryable_connection_failures_and_the_rest() {
    for kind in [
        io::ErrorKind::ConnectionRefused,
        io::ErrorKind::ConnectionReset,
        io::ErrorKind::BrokenPipe,
        io::ErrorKind::UnexpectedEof,
    ] {
        let verdict = classify(&io::Error::from(kind));
        assert_eq!(verdict.disposition, Retry, "{kind:?}");
        assert!(verdict.health_failure);
        assert_eq!(verdict.cause, Cause::Io(kind));
    }
    let verdict = classify(&io::Error::from(io::ErrorKind::TimedOut));
    assert_eq!(verdict.disposition, Failover);
}

/// An error that wraps another, as a client library or a layer would.
#[derive(Debug)]
struct Wrapper(BoxError);

impl fmt::Display for Wrapper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("client error")
    }
}

impl Error for Wrapper {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.0)
    }
}

#[test]
fn the_source_chain_is_walked_to_the_first_known_error() {
    let connect_refused = Wrapper(Box::new(Wrapper(Box::new(io::Error::from(
        io::ErrorKind::ConnectionRefused,
    )))));
    assert_eq!(
        classify(&connect_refused).cause,
        Cause::Io(io::ErrorKind::ConnectionRefused)
    );

    // The outermost known error wins: a provider error wrapping an I/O error is classified
    // by its kind.
    let provider = LlmError::new(ErrorKind::Timeout, "read timed out")
        .with_source(io::Error::from(io::ErrorKind::ConnectionReset));
    let boxed: BoxError = Box::new(Wrapper(Box::new(provider)));
    let verdict = classify(&*boxed);
    assert_eq!(verdict.cause, Cause::Provider(ErrorKind::Timeout));
    assert_eq!(verdict.disposition, Failover);
}

#[test]
fn unknown_errors_are_fatal() {
    let boxed: BoxError = "something odd".into();
    let verdict = classify(&*boxed);
    assert_eq!(verdict.disposition, Fatal);
    assert_eq!(verdict.cause, Cause::Unknown);
    assert!(!verdict.health_failure);
}

#[test]
fn all_targets_failed_lists_every_attempt_in_its_message() {
    let mut skipped = attempt();
    skipped.target = "gemini/flash".into();
    skipped.outcome = AttemptOutcome::Skipped {
        reason: "circuit open".into(),
    };
    let error = AllTargetsFailed::new(vec![attempt(), skipped]);
    let text = error.to_string();
    assert!(
        text.contains("openai/gpt-4o (gpt-4o) failed: overloaded"),
        "{text}"
    );
    assert!(
        text.contains("gemini/flash (gpt-4o) skipped: circuit open"),
        "{text}"
    );
}

// --- the classifier trait ------------------------------------------------------------------

#[derive(Debug)]
struct ClientError(LlmError);

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("my client failed")
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[test]
fn the_default_classifier_is_the_builtin_table() {
    use seawall_core::Classifier;
    let error = LlmError::new(ErrorKind::Overloaded, "overloaded").with_status(529);
    assert_eq!(Classifier::default().classify(&error), classify(&error));
    let policy = ClassifyPolicy::default().content_filter(ContentFilterPolicy::Failover);
    let refusal = LlmError::new(ErrorKind::ContentFiltered, "refused");
    assert_eq!(
        Classifier::from(policy).classify(&refusal).disposition,
        Disposition::Failover
    );
}

#[test]
fn a_user_classifier_sees_its_own_errors_first_and_the_table_finds_the_rest() {
    use seawall_core::{BuiltinClassifier, Cause, Classification, Classifier, Classify};

    struct Mine;
    impl Classify for Mine {
        fn recognise(&self, error: &(dyn std::error::Error + 'static)) -> Option<Classification> {
            if let Some(wrapper) = error.downcast_ref::<ClientError>()
                && wrapper.0.kind() == ErrorKind::Server
            {
                return Some(Classification::new(
                    Disposition::Failover,
                    Cause::Custom("mine"),
                ));
            }
            BuiltinClassifier::default().recognise(error)
        }
    }
    let classifier = Classifier::new(Mine);

    let mine = ClientError(LlmError::new(ErrorKind::Server, "boom").with_status(500));
    let verdict = classifier.classify(&mine);
    assert_eq!(verdict.disposition, Disposition::Failover);
    assert_eq!(verdict.cause.as_str(), "mine");
    assert!(!verdict.health_failure);

    // Not recognised by the user's rule: the walk reaches the LlmError inside.
    let wrapped = ClientError(
        LlmError::new(ErrorKind::RateLimited, "slow down")
            .with_status(429)
            .with_retry_after(Duration::from_secs(2)),
    );
    let verdict = classifier.classify(&wrapped);
    assert_eq!(verdict.disposition, Disposition::Retry);
    assert_eq!(verdict.retry_after, Some(Duration::from_secs(2)));
    assert!(verdict.out_of_capacity);
}
