//! The chaos layer on raw HTTP: the faults on the wire, as the provider would send them.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use seawall::ServiceBuilderExt;
use seawall::chaos::ChaosLayer;
use seawall::retry::RetryLayer;
use seawall_core::fault::{Fault, FaultRule};
use seawall_core::{BoxError, ErrorKind, LlmResponse, ProviderKind};
use tokio::time::Instant;
use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};

const STREAM: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"Par\"}}]}\n\n\
data: {\"choices\":[{\"delta\":{\"content\":\"is\"}}]}\n\n\
data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n\
data: [DONE]\n\n";

/// An upstream that streams [`STREAM`] (or answers a whole JSON body), in frames that do not
/// follow event boundaries.
fn upstream(
    streamed: bool,
) -> impl tower::Service<
    http::Request<Full<Bytes>>,
    Response = http::Response<http_body_util::StreamBody<frames::Frames>>,
    Error = BoxError,
    Future: Send,
> + Clone {
    service_fn(move |_request: http::Request<Full<Bytes>>| async move {
        let (content_type, body) = if streamed {
            ("text/event-stream", STREAM.as_bytes())
        } else {
            (
                "application/json",
                &b"{\"choices\":[{\"message\":{\"content\":\"Paris\"}}]}"[..],
            )
        };
        let frames = body.chunks(7).map(Bytes::copy_from_slice).collect();
        let response = http::Response::builder()
            .header("content-type", content_type)
            .body(http_body_util::StreamBody::new(frames::Frames(frames)))?;
        Ok::<_, BoxError>(response)
    })
}

/// A body of frames, given up front.
mod frames {
    use std::collections::VecDeque;
    use std::convert::Infallible;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use futures_core::Stream;
    use http_body::Frame;

    pub(crate) struct Frames(pub(crate) VecDeque<Bytes>);

    impl Stream for Frames {
        type Item = Result<Frame<Bytes>, Infallible>;

        fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            Poll::Ready(self.0.pop_front().map(|bytes| Ok(Frame::data(bytes))))
        }
    }
}

fn request() -> http::Request<Full<Bytes>> {
    http::Request::post("http://localhost/v1/chat/completions")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap()
}

/// The body's bytes, and the error it ended with, if any.
async fn read<B>(body: B) -> (String, Option<BoxError>)
where
    B: http_body::Body<Data = Bytes, Error = BoxError> + Unpin,
{
    let mut body = body;
    let mut text = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => text.extend_from_slice(&frame.into_data().unwrap_or_default()),
            Err(error) => return (String::from_utf8(text).unwrap(), Some(error)),
        }
    }
    (String::from_utf8(text).unwrap(), None)
}

async fn streamed_with(fault: Fault) -> (String, Option<BoxError>) {
    let service = ChaosLayer::new([FaultRule::always(fault)]).layer(upstream(true));
    let response = service.oneshot(request()).await.unwrap();
    read(response.into_body()).await
}

#[tokio::test(start_paused = true)]
async fn an_injected_429_is_an_openai_error_with_its_retry_after() {
    let service =
        ChaosLayer::new([FaultRule::first(1, Fault::rate_limited(2))]).layer(upstream(false));
    let response = service.clone().oneshot(request()).await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "2");
    let failure = response.failure().expect("a failure");
    assert_eq!(failure.kind(), ErrorKind::RateLimited);
    assert_eq!(failure.hints().retry_after, Some(Duration::from_secs(2)));
    let (body, _) = read(response.into_body()).await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"]["code"], "rate_limit_exceeded");

    // The retry layer waits it out.
    let service = ServiceBuilder::new()
        .retry_target(RetryLayer::new())
        .layer(ChaosLayer::new([FaultRule::first(
            1,
            Fault::rate_limited(2),
        )]))
        .service(upstream(false));
    let started = Instant::now();
    let response = service.oneshot(request()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(started.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn an_anthropic_overload_is_a_529_in_anthropics_shape() {
    let service = ChaosLayer::new([FaultRule::always(Fault::overloaded())])
        .provider(ProviderKind::Anthropic)
        .layer(upstream(false));
    let response = service.oneshot(request()).await.unwrap();
    assert_eq!(response.status(), 529);
    let (body, _) = read(response.into_body()).await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["type"], "error");
    assert_eq!(json["error"]["type"], "overloaded_error");
}

#[tokio::test(start_paused = true)]
async fn stream_faults_are_played_on_the_events() {
    let events = |text: &str| {
        text.split_terminator("\n\n")
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let whole = events(STREAM);

    let (text, error) = streamed_with(Fault::CutAfter { events: 2 }).await;
    assert_eq!(events(&text), whole[..2]);
    assert!(error.is_some(), "the connection breaks");

    let (text, error) = streamed_with(Fault::ErrorFrameAfter { events: 1 }).await;
    let got = events(&text);
    assert_eq!(got.len(), 2);
    assert!(got[1].contains("server_error"), "{}", got[1]);
    assert!(error.is_none(), "an error frame ends the stream cleanly");

    let (text, _) = streamed_with(Fault::MalformedChunkAfter { events: 1 }).await;
    let got = events(&text);
    assert_eq!(got.len(), 5);
    assert!(
        serde_json::from_str::<serde_json::Value>(got[1].trim_start_matches("data: ")).is_err()
    );

    let (text, error) = streamed_with(Fault::EndWithoutTerminal { events: None }).await;
    assert_eq!(events(&text), whole[..2], "no finish reason, no [DONE]");
    assert!(error.is_none());

    let (text, _) = streamed_with(Fault::DuplicateFirstEvent).await;
    let got = events(&text);
    assert_eq!(got[0], got[1]);
    assert_eq!(got.len(), 5);
}

#[tokio::test(start_paused = true)]
async fn a_stall_holds_the_next_event() {
    let service = ChaosLayer::new([FaultRule::always(Fault::StallAfter {
        events: 1,
        ms: 4_000,
    })])
    .layer(upstream(true));
    let response = service.oneshot(request()).await.unwrap();
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(first.starts_with(b"data:"));
    let started = Instant::now();
    let (rest, error) = read(body).await;
    assert!(error.is_none());
    assert_eq!(started.elapsed(), Duration::from_secs(4));
    assert_eq!(format!("{}{rest}", String::from_utf8_lossy(&first)), STREAM);
}

#[tokio::test(start_paused = true)]
async fn a_whole_body_is_cut_halfway_and_a_disconnect_is_an_error() {
    let service = ChaosLayer::new([
        FaultRule::nth(1, Fault::CutAfter { events: 0 }),
        FaultRule::nth(2, Fault::Disconnect),
    ])
    .layer(upstream(false));
    let response = service.clone().oneshot(request()).await.unwrap();
    let (text, error) = read(response.into_body()).await;
    assert!(error.is_some());
    assert_eq!(text.len(), 22, "half of the 45-byte body: {text}");

    let error = service.oneshot(request()).await.unwrap_err();
    let error = error.downcast_ref::<seawall_core::LlmError>().unwrap();
    assert_eq!(error.kind(), ErrorKind::Connect);
}
