//! Object ids: BLAKE3 digests of an object's canonical bytes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A 32-byte BLAKE3 digest naming an object. For a file it is the hash of the whole content,
/// so it equals what `b3sum` prints.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(pub [u8; 32]);

impl Id {
    pub const LEN: usize = 32;

    pub fn of(bytes: &[u8]) -> Id {
        Id(*blake3::hash(bytes).as_bytes())
    }

    pub fn from_hash(h: blake3::Hash) -> Id {
        Id(*h.as_bytes())
    }

    pub fn from_slice(b: &[u8]) -> Option<Id> {
        let arr: [u8; 32] = b.try_into().ok()?;
        Some(Id(arr))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 12 hex digits, for humans.
    pub fn short(&self) -> String {
        self.to_hex()[..12].to_string()
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.short())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("not a valid object id: {0:?} (expected 64 hex digits)")]
pub struct ParseIdError(pub String);

/// The value of each hex digit (either case); 0xff for any other byte.
const HEX: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// 64 hex digits to 32 bytes. A table lookup per digit: commits and run records hold up to a
/// hundred thousand ids, and reading them was a tenth of a re-run.
fn decode_hex(s: &[u8]) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let (hi, lo) = (HEX[pair[0] as usize], HEX[pair[1] as usize]);
        if (hi | lo) & 0xf0 != 0 {
            return None;
        }
        *o = hi << 4 | lo;
    }
    Some(out)
}

impl FromStr for Id {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Id, ParseIdError> {
        decode_hex(s.as_bytes())
            .map(Id)
            .ok_or_else(|| ParseIdError(s.to_string()))
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Id, D::Error> {
        // A visitor reads the digits where they lie, without a String per id.
        struct Digits;
        impl serde::de::Visitor<'_> for Digits {
            type Value = Id;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("64 hex digits")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Id, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(Digits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_content_matches_b3sum() {
        // `printf '' | b3sum`
        assert_eq!(
            Id::of(b"").to_hex(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }

    #[test]
    fn hex_round_trip() {
        let id = Id::of(b"hello");
        assert_eq!(id.to_hex().parse::<Id>().unwrap(), id);
        assert!("xyz".parse::<Id>().is_err());
        let hex = id.to_hex();
        assert_eq!(hex.to_uppercase().parse::<Id>().unwrap(), id, "either case");
        assert!(format!("{}g", &hex[..63]).parse::<Id>().is_err());
        assert!(format!("{hex}0").parse::<Id>().is_err());
        let all: Vec<u8> = (0..=255).collect();
        for chunk in all.chunks(32) {
            let id = Id::from_slice(chunk).unwrap();
            assert_eq!(id.to_hex().parse::<Id>().unwrap(), id);
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(serde_json::from_str::<Id>(&json).unwrap(), id);
        }
        assert!(serde_json::from_str::<Id>("\"zz\"").is_err());
        assert!(serde_json::from_str::<Id>("7").is_err());
    }
}
