//! Structured vars through `encode_request` then the decoder.
//!
//! Properties: what encodes decodes to the same vars in the same order; every strict prefix of the encoded
//! packet is `Partial` with the exact `needed` once the header is in (never an error, at any byte boundary);
//! `CONTENT_LENGTH` as decimal digits round-trips through `content_length`.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use liege_protocol::uwsgi::{self, Status, UwsgiError, HEADER_LEN, MAX_DATASIZE};

#[derive(Arbitrary, Debug)]
struct Input {
    modifier2: u8,
    vars: Vec<(Vec<u8>, Vec<u8>)>,
    content_length: Option<u32>,
}

fuzz_target!(|input: Input| {
    let mut vars: Vec<(&[u8], &[u8])> = input.vars.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
    let cl = input.content_length.map(|n| n.to_string());
    if let Some(cl) = &cl {
        vars.retain(|(k, _)| *k != b"CONTENT_LENGTH");
        vars.push((b"CONTENT_LENGTH", cl.as_bytes()));
    }
    let mut packet = vec![0xAA; 3]; // encode_request appends; what was there stays
    match uwsgi::encode_request(uwsgi::MODIFIER1_WSGI, input.modifier2, &vars, &mut packet) {
        Ok(()) => {}
        Err(UwsgiError::Unencodable(_)) => {
            assert_eq!(packet, [0xAA; 3], "a refused encode leaves the buffer as it was");
            let empty_key = vars.iter().any(|(k, _)| k.is_empty());
            let too_big = vars.iter().map(|(k, v)| 4 + k.len() + v.len()).sum::<usize>() > MAX_DATASIZE;
            assert!(empty_key || too_big);
            return;
        }
        Err(other) => panic!("encode failed with {other:?}"),
    }
    let packet = &packet[3..];
    let packet_len = packet.len();
    assert_eq!(uwsgi::check(packet, MAX_DATASIZE), Ok(Status::Complete { packet_len }));
    for cut in 0..packet_len {
        match uwsgi::check(&packet[..cut], MAX_DATASIZE) {
            Ok(Status::Partial { needed }) if cut >= HEADER_LEN => assert_eq!(cut + needed, packet_len),
            Ok(Status::Partial { needed }) => assert_eq!(needed, HEADER_LEN - cut),
            other => panic!("prefix {cut}/{packet_len} gave {other:?}"),
        }
    }
    let request = uwsgi::parse(packet).expect("an encoded packet parses");
    assert_eq!(request.modifier2, input.modifier2);
    let decoded: Vec<(&[u8], &[u8])> = request.vars.iter().collect();
    assert_eq!(decoded, vars);
    if let Some(n) = input.content_length {
        assert_eq!(request.content_length(), Ok(u64::from(n)));
    }
});
