//! The rule about the master key, written once: the configuration loader and the gateway call it.

use mirror_core::SecretString;

/// Where the master key is set, for errors.
pub const MASTER_KEY_PATH: &str = "general_settings.master_key";

/// An empty or whitespace master key is refused: the gateway would otherwise compare callers'
/// keys with nothing and, as LiteLLM reads an empty key, run without authentication while the
/// file says it has a key. No key at all (the line left out, or `null`) is how to run without one.
///
/// # Errors
///
/// A message saying what is wrong, without the key.
pub fn check_master_key(key: Option<&SecretString>) -> Result<(), String> {
    match key {
        Some(key) if key.expose().trim().is_empty() => Err(
            "is empty or whitespace (an `os.environ/NAME` reference to an empty variable too): \
             it would turn authentication off; set a key, or remove the line to run without one"
                .to_owned(),
        ),
        _ => Ok(()),
    }
}
