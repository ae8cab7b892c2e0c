//! Access to a response's event stream, so layers can watch streamed responses on the typed
//! path and leave raw HTTP bodies alone.

use seawall_core::{ChatResponse, EventStream};

/// A response that may carry a stream of events still to come.
///
/// The timeout and breaker layers use it to watch streamed responses (time to first token,
/// idle time between chunks, the stream's outcome). Raw `http::Response`s have no typed
/// stream: their bodies are passed through untouched.
pub trait StreamingResponse {
    /// Takes the event stream out, if the response is streamed.
    fn take_stream(&mut self) -> Option<EventStream>;

    /// Puts a (wrapped) event stream back.
    fn put_stream(&mut self, stream: EventStream);
}

impl StreamingResponse for ChatResponse {
    #[inline]
    fn take_stream(&mut self) -> Option<EventStream> {
        self.stream.take()
    }

    #[inline]
    fn put_stream(&mut self, stream: EventStream) {
        self.stream = Some(stream);
    }
}

impl<B> StreamingResponse for http::Response<B> {
    #[inline]
    fn take_stream(&mut self) -> Option<EventStream> {
        None
    }

    #[inline]
    fn put_stream(&mut self, _stream: EventStream) {}
}
