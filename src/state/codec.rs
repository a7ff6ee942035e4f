//! The on-disk and on-wire encoding: a format-version byte, then bincode (serde API).
//! A reader refuses a version it does not know instead of misreading it.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The format of every value that has had only one shape so far. A type whose shape
/// changes writes the next version with [`encode_as`] and keeps reading the old one.
pub const FORMAT_VERSION: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("empty value")]
    Empty,
    #[error("unsupported format version {found} (this reader expects version {expected})")]
    Version { found: u8, expected: u8 },
    #[error("cannot decode value: {0}")]
    Decode(String),
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    encode_as(FORMAT_VERSION, value)
}

/// `value` written in format `version`.
pub fn encode_as<T: Serialize>(version: u8, value: &T) -> Vec<u8> {
    let mut out = vec![version];
    bincode::serde::encode_into_std_write(value, &mut out, bincode::config::standard())
        .expect("encoding into a Vec cannot fail");
    out
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode_as(FORMAT_VERSION, bytes)
}

/// A value that must be in format `version`.
pub fn decode_as<T: DeserializeOwned>(version: u8, bytes: &[u8]) -> Result<T, CodecError> {
    let found = version_of(bytes)?;
    if found != version {
        return Err(CodecError::Version {
            found,
            expected: version,
        });
    }
    let (value, _) = bincode::serde::decode_from_slice(&bytes[1..], bincode::config::standard())
        .map_err(|e| CodecError::Decode(e.to_string()))?;
    Ok(value)
}

/// The format a value was written in.
pub fn version_of(bytes: &[u8]) -> Result<u8, CodecError> {
    bytes.first().copied().ok_or(CodecError::Empty)
}
