//! Which partition a keyed record goes to: the one rule shared by the Rust client, the CLI and the
//! broker (the native protocol's "partition -1, choose by key"). A leaf: it imports nothing of
//! ours, so every layer may use it.
//!
//! Producers that share a topic must agree on the rule, or records of one key land on two
//! partitions and lose their order. The rules are those of Kafka's clients:
//!
//! - `Murmur2` (the default): Kafka's Java client (`BuiltInPartitioner.partitionForKey`),
//!   kafkajs 2.x's default, kafka-python, aiokafka and librdkafka's `murmur2_random`:
//!   `toPositive(murmur2(key)) % partitions`, with Kafka's murmur2 (seed 0x9747b28c).
//! - `Crc32`: librdkafka's default `consistent_random` (and `consistent`):
//!   `crc32(key) % partitions`, with the IEEE CRC-32 of zlib (`rd_crc32`).
//! - `Xxh3`: ringmq's rule before murmur2 became the default, for data placed by it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A key → partition rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Partitioner {
    /// `(murmur2(key) & 0x7fffffff) % partitions`: Kafka's Java client, kafkajs, kafka-python,
    /// aiokafka, librdkafka's `murmur2_random`.
    #[default]
    Murmur2,
    /// `crc32(key) % partitions`: librdkafka's default `consistent_random`.
    Crc32,
    /// `xxh3_64(key) % partitions`: ringmq's own rule before murmur2 became the default.
    Xxh3,
}

impl Partitioner {
    /// Every rule, in the order the CLI lists them.
    pub const ALL: [Partitioner; 3] = [Partitioner::Murmur2, Partitioner::Crc32, Partitioner::Xxh3];

    /// The partition `key` goes to among `partitions` (0 is treated as 1).
    pub fn partition(self, key: &[u8], partitions: u32) -> u32 {
        let partitions = partitions.max(1);
        match self {
            Partitioner::Murmur2 => to_positive(murmur2(key)) % partitions,
            Partitioner::Crc32 => crc32fast::hash(key) % partitions,
            Partitioner::Xxh3 => (xxhash_rust::xxh3::xxh3_64(key) % u64::from(partitions)) as u32,
        }
    }

    /// Its name on the command line and in configuration files.
    pub fn name(self) -> &'static str {
        match self {
            Partitioner::Murmur2 => "murmur2",
            Partitioner::Crc32 => "crc32",
            Partitioner::Xxh3 => "xxh3",
        }
    }

    /// The rule named `name` (`murmur2`, `crc32` or `xxh3`).
    pub fn parse(name: &str) -> Option<Partitioner> {
        Partitioner::ALL
            .into_iter()
            .find(|partitioner| partitioner.name() == name)
    }
}

impl fmt::Display for Partitioner {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

impl FromStr for Partitioner {
    type Err = String;

    fn from_str(name: &str) -> Result<Partitioner, String> {
        Partitioner::parse(name).ok_or_else(|| format!("{name:?} is not murmur2, crc32 or xxh3"))
    }
}

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`): MurmurHash2 with seed
/// 0x9747b28c, the key read as little-endian 4-byte words, returned as Java's signed int.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // Java's `int length`: keys are far below 2^31 bytes.
    let mut h = SEED ^ data.len() as u32;
    let mut words = data.chunks_exact(4);
    for word in &mut words {
        let mut k = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = words.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: the sign bit cleared (not the absolute value).
pub fn to_positive(hash: i32) -> u32 {
    (hash & 0x7fff_ffff) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Apache Kafka's `UtilsTest.testMurmur2` (clients/src/test/java/org/apache/kafka/common/
    /// utils/UtilsTest.java): all but "abc" are negative before `toPositive`.
    const KAFKA_UTILS_TEST: [(&[u8], i32); 6] = [
        (b"21", -973_932_308),
        (b"foobar", -790_332_482),
        (b"a-little-bit-long-string", -985_981_536),
        (b"a-little-bit-longer-string", -1_486_304_829),
        (
            b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            -58_897_971,
        ),
        (b"abc", 479_470_107),
    ];

    /// kafkajs 2.x, src/producer/partitioners/default/murmur2.spec.js (generated there with
    /// Kafka's Java `Utils.murmur2`).
    const KAFKAJS_DEFAULT: [(&[u8], i32); 8] = [
        (b"0", 971_027_396),
        (b"1", -1_993_445_489),
        (b"128", -326_012_175),
        (b"2187", -1_508_407_203),
        (b"279936", 1_462_227_128),
        (b"2097152", 607_668_903),
        (b"170859375", -1_658_323_481),
        (b"100:48069", 1_009_543_857),
    ];

    /// librdkafka's `unittest_murmur2` (src/rdmurmur2.c), its "java_murmur2_results": every tail
    /// length, and the empty key.
    const LIBRDKAFKA_MURMUR2: [(&[u8], u32); 7] = [
        (b"kafka", 0xd067_cf64),
        (b"giberish123456789", 0x8f55_2b0c),
        (b"1234", 0x9fc9_7b14),
        (b"234", 0xe7c0_09ca),
        (b"34", 0x8739_30da),
        (b"4", 0x5a4b_5ca1),
        (b"", 0x106e_08d9),
    ];

    #[test]
    fn murmur2_matches_kafkas_own_vectors() {
        for (key, expected) in KAFKA_UTILS_TEST.iter().chain(&KAFKAJS_DEFAULT) {
            assert_eq!(
                murmur2(key),
                *expected,
                "murmur2({:?})",
                String::from_utf8_lossy(key)
            );
        }
        for (key, expected) in LIBRDKAFKA_MURMUR2 {
            assert_eq!(murmur2(key) as u32, expected, "{key:?}");
        }
    }

    #[test]
    fn murmur2_partitions_clear_the_sign_bit_as_the_java_client_does() {
        // toPositive(-973932308) = 1173551340, not |h| = 973932308.
        assert_eq!(to_positive(-973_932_308), 1_173_551_340);
        assert_eq!(Partitioner::Murmur2.partition(b"21", 7), 1_173_551_340 % 7);
        assert_eq!(to_positive(i32::MIN), 0);
        for (key, hash) in KAFKA_UTILS_TEST {
            for partitions in [1, 3, 7, 16, 100] {
                assert_eq!(
                    Partitioner::Murmur2.partition(key, partitions),
                    (hash & 0x7fff_ffff) as u32 % partitions
                );
            }
        }
    }

    /// librdkafka's tests/0048-partitioner.c: the crc32 of each key, as its `consistent`
    /// partitioner reduces it (an empty key is 0).
    #[test]
    fn crc32_matches_librdkafkas_consistent_partitioner() {
        let cases: [(&[u8], u32); 4] = [
            (b"", 0),
            (b"23456", 0xb1b4_51d7),
            (
                b"this is another string with more length to it perhaps",
                0xb015_0df7,
            ),
            (b"hejsan", 0xd077_037e),
        ];
        for (key, crc) in cases {
            for partitions in [7, 17] {
                assert_eq!(
                    Partitioner::Crc32.partition(key, partitions),
                    crc % partitions
                );
            }
        }
        // The same test's murmur2 expectations.
        for (key, hash) in [
            (&b"23456"[..], 0x058d_780fu32),
            (
                b"this is another string with more length to it perhaps",
                0x4f77_03da,
            ),
            (b"hejsan", 0x5ec1_9395),
        ] {
            assert_eq!(
                Partitioner::Murmur2.partition(key, 17),
                (hash & 0x7fff_ffff) % 17
            );
        }
    }

    #[test]
    fn xxh3_is_the_old_rule() {
        let key = b"user-1";
        assert_eq!(
            Partitioner::Xxh3.partition(key, 16),
            (xxhash_rust::xxh3::xxh3_64(key) % 16) as u32
        );
    }

    #[test]
    fn keys_spread_and_stick_under_every_rule() {
        for partitioner in Partitioner::ALL {
            assert_eq!(
                partitioner.partition(b"user-1", 16),
                partitioner.partition(b"user-1", 16)
            );
            let used: std::collections::HashSet<u32> = (0..200)
                .map(|n| partitioner.partition(format!("k{n}").as_bytes(), 16))
                .collect();
            assert_eq!(used.len(), 16, "{partitioner}");
            assert_eq!(partitioner.partition(b"any", 0), 0);
        }
    }

    #[test]
    fn names_round_trip_and_murmur2_is_the_default() {
        assert_eq!(Partitioner::default(), Partitioner::Murmur2);
        for partitioner in Partitioner::ALL {
            assert_eq!(partitioner.name().parse(), Ok(partitioner));
        }
        assert!("murmur".parse::<Partitioner>().is_err());
        #[derive(Deserialize)]
        struct File {
            partitioner: Partitioner,
        }
        let file: File = toml::from_str("partitioner = \"crc32\"").unwrap();
        assert_eq!(file.partitioner, Partitioner::Crc32);
    }
}
