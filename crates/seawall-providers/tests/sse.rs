//! The SSE decoder: the same events whatever the chunk boundaries, and the WHATWG line and
//! field rules the providers' SDKs follow.

use seawall_providers::sse::{SseDecoder, SseEvent};

fn decode_in_pieces(bytes: &[u8], cuts: &[usize]) -> Vec<SseEvent> {
    let mut decoder = SseDecoder::new();
    let mut events = Vec::new();
    let mut start = 0;
    for &cut in cuts {
        decoder.feed(&bytes[start..cut], &mut events);
        start = cut;
    }
    decoder.feed(&bytes[start..], &mut events);
    decoder.finish(&mut events);
    events
}

fn event(name: Option<&str>, data: &str) -> SseEvent {
    SseEvent {
        event: name.map(str::to_owned),
        data: data.to_owned(),
        id: None,
    }
}

const MIXED: &str = "\u{feff}: comment line\r\n\
event: message_start\r\n\
data: {\"type\":\"message_start\"}\r\n\
\r\n\
data: line one\n\
data:line two\n\
\n\
event: ping\rdata: {\"type\": \"ping\"}\r\r\
retry: 3000\n\
unknown-field: ignored\n\
data\n\
\n\
data: Grüße 🌊 名前\n\n";

fn expected() -> Vec<SseEvent> {
    vec![
        event(Some("message_start"), "{\"type\":\"message_start\"}"),
        event(None, "line one\nline two"),
        event(Some("ping"), "{\"type\": \"ping\"}"),
        event(None, ""),
        event(None, "Grüße 🌊 名前"),
    ]
}

#[test]
fn decodes_crlf_cr_lf_comments_event_lines_and_multiline_data() {
    assert_eq!(decode_in_pieces(MIXED.as_bytes(), &[]), expected());
}

#[test]
fn every_single_split_point_gives_the_same_events() {
    let bytes = MIXED.as_bytes();
    for cut in 0..=bytes.len() {
        assert_eq!(decode_in_pieces(bytes, &[cut]), expected(), "cut at {cut}");
    }
}

#[test]
fn every_pair_of_split_points_gives_the_same_events() {
    let bytes = MIXED.as_bytes();
    for a in 0..=bytes.len() {
        for b in a..=bytes.len() {
            assert_eq!(
                decode_in_pieces(bytes, &[a, b]),
                expected(),
                "cuts at {a}, {b}"
            );
        }
    }
}

#[test]
fn byte_by_byte_feeding_gives_the_same_events() {
    let bytes = MIXED.as_bytes();
    let cuts: Vec<usize> = (1..bytes.len()).collect();
    assert_eq!(decode_in_pieces(bytes, &cuts), expected());
}

#[test]
fn a_byte_order_mark_split_across_chunks_is_stripped() {
    let bytes = "\u{feff}data: x\n\n".as_bytes();
    for cut in 0..=4 {
        assert_eq!(
            decode_in_pieces(bytes, &[cut]),
            vec![event(None, "x")],
            "cut at {cut}"
        );
    }
}

#[test]
fn an_unterminated_last_event_is_dispatched_at_the_end() {
    let events = decode_in_pieces(b"data: {\"a\":1}\n\ndata: {\"b\":2}", &[]);
    assert_eq!(
        events,
        vec![event(None, "{\"a\":1}"), event(None, "{\"b\":2}")]
    );
}

#[test]
fn an_event_without_data_is_not_dispatched() {
    let events = decode_in_pieces(b"event: ping\n\n: only a comment\n\ndata: x\n\n", &[]);
    assert_eq!(events, vec![event(None, "x")]);
}

#[test]
fn the_id_field_is_kept_for_later_events() {
    let events = decode_in_pieces(b"id: 7\ndata: a\n\ndata: b\n\n", &[]);
    assert_eq!(events[0].id.as_deref(), Some("7"));
    assert_eq!(events[1].id.as_deref(), Some("7"));
}

#[test]
fn an_endless_line_is_reported_instead_of_growing_forever() {
    let mut decoder = SseDecoder::new();
    let mut events = Vec::new();
    let chunk = vec![b'x'; 1024 * 1024];
    decoder.feed(b"data: ", &mut events);
    for _ in 0..17 {
        decoder.feed(&chunk, &mut events);
    }
    assert!(decoder.check_size().is_err());
    assert!(events.is_empty());
}
