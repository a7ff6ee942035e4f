//! The rules for the keyring's commands.

use std::collections::BTreeSet;

use super::{check_sealed, invalid};
use crate::crypto::WrappedKey;
use crate::state::{Keyring, Reseal, StateError};

fn check_seal_key_id(id: &str) -> Result<(), StateError> {
    if id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(invalid("seal_key_id", "must be 16 hex digits"))
    }
}

fn check_wrapped(wrapped: &WrappedKey) -> Result<(), StateError> {
    if wrapped.is_well_formed() {
        Ok(())
    } else {
        Err(invalid("wrapped", "is not a wrapped 32-byte key"))
    }
}

pub(super) fn check_first_keyring(keyring: &Keyring) -> Result<(), StateError> {
    check_seal_key_id(&keyring.seal_key_id)?;
    match keyring.keys.iter().collect::<Vec<_>>().as_slice() {
        [(1, key)] if keyring.current == 1 => check_wrapped(&key.wrapped),
        _ => Err(invalid(
            "keys",
            "a first keyring holds key 1 only, as its current key",
        )),
    }
}

pub(super) fn check_rotation(
    seal_key_id: &str,
    key_id: u32,
    wrapped: &WrappedKey,
    resealed: &[Reseal],
) -> Result<(), StateError> {
    check_seal_key_id(seal_key_id)?;
    check_wrapped(wrapped)?;
    if key_id < 2 {
        return Err(invalid("key_id", "a rotation makes key 2 or later"));
    }
    let mut sites = BTreeSet::new();
    for reseal in resealed {
        check_sealed("resealed.replaces", &reseal.replaces)?;
        check_sealed("resealed.sealed", &reseal.sealed)?;
        if reseal.sealed.key_id() != key_id {
            return Err(invalid(
                "resealed.sealed",
                format!("must be sealed with the new key {key_id}"),
            ));
        }
        if !sites.insert(&reseal.site) {
            return Err(invalid("resealed", "names a token twice"));
        }
    }
    Ok(())
}
