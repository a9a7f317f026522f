//! Random bytes fed to every decoder of the native protocol never panic: they decode or they are
//! refused with an error.

use bytes::BytesMut;
use proptest::prelude::*;
use ringmq::batch;
use ringmq::protocol::Request;
use ringmq::protocol::codec::{Reader, RequestHeader, frame_status};
use ringmq::protocol::messages::{ApiKey, SUPPORTED_APIS, decode_response};
use zerocopy::FromBytes;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_a_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = frame_status(&bytes, 1 << 20);
        let _ = RequestHeader::read_from_prefix(&bytes);
        for (api, _, _) in SUPPORTED_APIS {
            let _ = Request::decode(*api, Reader::new(BytesMut::from(&bytes[..])));
            let _ = decode_response(*api, Reader::new(BytesMut::from(&bytes[..])));
        }
        let _ = ApiKey::from_u16(u16::from_be_bytes([bytes.first().copied().unwrap_or(0), bytes.get(1).copied().unwrap_or(0)]));
        let _ = batch::validate(&bytes, batch::Limits::UNLIMITED);
        let _ = batch::records::decode(&bytes);
    }

    #[test]
    fn a_valid_batch_with_any_byte_changed_is_refused_or_unchanged_in_meaning(position in 0usize..200, flip in 1u8..=255) {
        let mut builder = batch::BatchBuilder::new(batch::Compression::None);
        builder.push(batch::Record::new(5, Some(b"key"), Some(&[9u8; 150])));
        let mut bytes = builder.build().to_vec();
        let position = position % bytes.len();
        bytes[position] ^= flip;
        // Bytes 0..8 (base offset) and 12..16 (leader epoch) are outside the CRC by design.
        let outside_crc = position < 8 || (12..16).contains(&position);
        prop_assert_eq!(batch::validate(&bytes, batch::Limits::UNLIMITED).is_ok(), outside_crc);
    }
}
