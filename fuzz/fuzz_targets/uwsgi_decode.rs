//! Arbitrary bytes into the uwsgi decoder, as a socket would deliver them.
//!
//! Properties beyond "no panic":
//! - `check` and `parse` agree: a packet `check` calls complete is one `parse` accepts or refuses for its
//!   contents, never for its length;
//! - every prefix of a complete packet is `Partial` (incomplete is a status, never an error), and `needed`
//!   is exact once the header is in;
//! - decode then encode gives back the packet byte for byte (the vars view loses nothing);
//! - the accessors (`get`, `content_length`, `url_scheme`, `environ_vars`) are total.
#![no_main]

use libfuzzer_sys::fuzz_target;
use liege_protocol::uwsgi::{self, Status, UwsgiError, HEADER_LEN, MAX_DATASIZE};

fuzz_target!(|data: &[u8]| {
    // The first byte picks buffer-size, so the TooLarge path is exercised as well as the full range.
    let (max_datasize, buf) = match data.split_first() {
        Some((&b, rest)) if b & 1 == 1 => (usize::from(b) * 64, rest),
        Some((_, rest)) => (MAX_DATASIZE, rest),
        None => (MAX_DATASIZE, data),
    };
    let status = match uwsgi::check(buf, max_datasize) {
        Ok(status) => status,
        Err(UwsgiError::TooLarge { datasize, max }) => {
            assert!(datasize > max);
            return;
        }
        Err(UwsgiError::UnsupportedModifier { modifier1, .. }) => {
            assert_ne!(modifier1, uwsgi::MODIFIER1_WSGI);
            assert!(uwsgi::parse(buf).is_err());
            return;
        }
        Err(other) => panic!("check returned {other:?}: it looks only at the header"),
    };
    let packet_len = match status {
        Status::Complete { packet_len } => packet_len,
        Status::Partial { needed } => {
            assert!(needed > 0);
            if buf.len() >= HEADER_LEN {
                // Exact once the header is in: that many more bytes make it complete.
                let datasize = usize::from(u16::from_le_bytes([buf[1], buf[2]]));
                assert_eq!(buf.len() + needed, HEADER_LEN + datasize);
            }
            assert!(matches!(uwsgi::parse(buf), Err(UwsgiError::LengthMismatch { .. })));
            return;
        }
    };
    assert!(packet_len >= HEADER_LEN && packet_len <= buf.len());
    let packet = &buf[..packet_len];
    for cut in 0..packet_len {
        match uwsgi::check(&packet[..cut], max_datasize) {
            Ok(Status::Partial { needed }) => assert!(cut + needed <= packet_len),
            other => panic!("prefix of {cut}/{packet_len} bytes gave {other:?}"),
        }
    }
    let request = match uwsgi::parse(packet) {
        Ok(request) => request,
        Err(UwsgiError::Malformed { offset, .. }) => {
            // At most the end of the packet: a length field missing right at the end is reported there.
            assert!(offset >= HEADER_LEN && offset <= packet_len);
            return;
        }
        Err(other) => panic!("parse of a complete packet failed for its length: {other:?}"),
    };
    let vars: Vec<(&[u8], &[u8])> = request.vars.iter().collect();
    assert_eq!(vars.len(), request.vars.len());
    let mut again = Vec::new();
    uwsgi::encode_request(request.modifier1, request.modifier2, &vars, &mut again).expect("re-encode");
    assert_eq!(again, packet);
    for (key, value) in &vars {
        assert!(!key.is_empty());
        // `get` returns the first value of a key.
        let first = vars.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
        assert_eq!(request.get(key), first);
        let _ = value;
    }
    let _ = request.content_length();
    assert!(matches!(request.url_scheme(), "http" | "https"));
    assert!(request.environ_vars().all(|(k, _)| !uwsgi::is_magic_var(k)));
});
