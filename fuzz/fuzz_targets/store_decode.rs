//! The provisioning store file decoder
//! (`provisioning_actors::store::fuzzing::decode`, what
//! `DefinitionStore::open` runs on the file's bytes).
//!
//! Each input is decoded twice: as a whole file, and as a payload wrapped
//! in a valid header (right length, right XXH3 checksum) so that the
//! fuzzer reaches the MessagePack decoder behind the checksum. A file that
//! decodes must encode again and decode to the same contents (round trip).
//! The decoder itself refuses a length field over its 64 MiB limit before
//! allocating; `-malloc_limit_mb` catches anything larger.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provisioning_actors::store::fuzzing::{decode, encode};
use provisioning_actors::store::{FORMAT_VERSION, HEADER_LEN, MAGIC};
use xxhash_rust::xxh3::xxh3_64;

fn check(bytes: &[u8]) {
    if let Ok(stored) = decode(bytes) {
        let again = encode(&stored).expect("decoded contents encode");
        assert_eq!(
            decode(&again).as_ref(),
            Ok(&stored),
            "decode, encode, decode changed the contents"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut file = Vec::with_capacity(HEADER_LEN + data.len());
    file.extend_from_slice(&MAGIC);
    file.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    file.extend_from_slice(&(data.len() as u64).to_le_bytes());
    file.extend_from_slice(&xxh3_64(data).to_le_bytes());
    file.extend_from_slice(data);
    check(&file);
});
