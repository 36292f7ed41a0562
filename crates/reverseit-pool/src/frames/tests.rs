use super::*;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut v = len.to_be_bytes()[1..].to_vec();
    v.push(kind);
    v.push(flags);
    v.extend_from_slice(&stream.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn scan(bytes: &[u8], skip: usize, chunk: usize) -> Vec<Event> {
    let mut s = Scanner::new(skip);
    let mut out = Vec::new();
    for c in bytes.chunks(chunk) {
        s.feed(c, |e| out.push(e));
    }
    out
}

#[test]
fn frames_are_found_across_any_split() {
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    let mut settings = Vec::new();
    settings.extend_from_slice(&[0, 3, 0, 0, 0, 100]);
    settings.extend_from_slice(&[0, 4, 0, 1, 0, 0]);
    bytes.extend(frame(SETTINGS, 0, 0, &settings));
    bytes.extend(frame(SETTINGS, 1, 0, &[]));
    bytes.extend(frame(HEADERS, 0x4, 1, &[1, 2, 3]));
    bytes.extend(frame(DATA, 0x1, 1, &[0; 40]));
    bytes.extend(frame(RST_STREAM, 0, 3, &[0, 0, 0, 8]));
    bytes.extend(frame(GOAWAY, 0, 0, &[0, 0, 0, 5, 0, 0, 0, 0]));
    let want = vec![
        Event::Setting { id: 3, value: 100 },
        Event::Setting {
            id: 4,
            value: 65536,
        },
        Event::SettingsDone,
        Event::Headers {
            stream: 1,
            end: false,
        },
        Event::Data {
            stream: 1,
            end: true,
        },
        Event::Reset { stream: 3 },
        Event::GoAway { last_stream: 5 },
    ];
    for chunk in [1, 2, 5, 9, 10, 64, 4096] {
        assert_eq!(scan(&bytes, PREFACE_LEN, chunk), want, "chunk {chunk}");
    }
}

#[test]
fn streams_close_when_both_halves_end_or_reset() {
    let wire = Wire::new();
    let mut w = FrameWatch::new((), wire.clone());
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(HEADERS, 0x5, 1, &[])); // GET: headers with END_STREAM
    out.extend(frame(HEADERS, 0x4, 3, &[])); // POST: body follows
    w.saw(&out, true);
    assert_eq!(wire.open_streams(), 2);
    w.saw(&frame(HEADERS, 0x4, 1, &[]), false); // response head
    assert_eq!(wire.open_streams(), 2, "response body still to come");
    w.saw(&frame(DATA, 0x1, 1, b"hi"), false);
    assert_eq!(wire.open_streams(), 1);
    w.saw(&frame(RST_STREAM, 0, 3, &[0, 0, 0, 8]), true);
    assert_eq!(wire.open_streams(), 0);
    assert!(!wire.settings_seen());
    w.saw(&frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 7]), false);
    assert!(wire.settings_seen());
    assert_eq!(wire.max_streams(), 7);
}

/// One frame as the property test below generates it.
#[derive(Debug, Clone)]
struct AnyFrame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

/// The events a frame should give, worked out from its fields rather than from its bytes.
fn expected(f: &AnyFrame) -> Vec<Event> {
    let stream = f.stream & 0x7fff_ffff;
    let end = f.flags & 1 != 0;
    match f.kind {
        DATA => vec![Event::Data { stream, end }],
        HEADERS => vec![Event::Headers { stream, end }],
        RST_STREAM => vec![Event::Reset { stream }],
        SETTINGS if !end => f
            .payload
            .chunks_exact(SETTING_LEN)
            .map(|e| Event::Setting {
                id: u16::from_be_bytes([e[0], e[1]]),
                value: u32::from_be_bytes([e[2], e[3], e[4], e[5]]),
            })
            .chain([Event::SettingsDone])
            .collect(),
        GOAWAY if f.payload.len() >= 4 => {
            let p = &f.payload;
            vec![Event::GoAway {
                last_stream: u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff,
            }]
        }
        _ => vec![],
    }
}

use proptest::prelude::*;

proptest! {
    /// Whatever frames a backend sends, cut into reads wherever the network cuts them, the
    /// watcher reports exactly each frame's events, in order, and never panics.
    #[test]
    fn any_frames_across_any_reads_give_their_events(
        frames in prop::collection::vec(
            (0u8..10, any::<u8>(), any::<u32>(), prop::collection::vec(any::<u8>(), 0..40))
                .prop_map(|(kind, flags, stream, payload)| AnyFrame { kind, flags, stream, payload }),
            0..12,
        ),
        cuts in prop::collection::vec(0usize..600, 0..8),
    ) {
        let bytes: Vec<u8> = frames
            .iter()
            .flat_map(|f| frame(f.kind, f.flags, f.stream, &f.payload))
            .collect();
        let want: Vec<Event> = frames.iter().flat_map(expected).collect();

        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
        cuts.sort_unstable();
        let mut scanner = Scanner::new(0);
        let mut got = Vec::new();
        let mut from = 0;
        for cut in cuts.into_iter().chain([bytes.len()]) {
            scanner.feed(&bytes[from..cut], |e| got.push(e));
            from = cut;
        }
        prop_assert_eq!(got, want);
    }
}
