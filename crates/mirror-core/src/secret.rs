//! Secrets that must never reach a log line, an error or a record.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A secret string such as an API key.
///
/// `Debug` prints `"<redacted>"`. There is deliberately no `Display` and no `Serialize`, so a secret
/// cannot end up in a log line, an error message or a serialized record by accident; the only way out is
/// [`SecretString::expose`], which is easy to grep for.
///
/// When deserialized, a value of the form `os.environ/NAME` is read from the environment variable `NAME`
/// (LiteLLM's convention), and a missing variable is an error that names it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(Box<str>);

impl SecretString {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(value.into().into_boxed_str())
    }

    /// Returns the secret itself. Call this only where the value is put on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        resolve_env_reference(raw)
            .map(SecretString::new)
            .map_err(serde::de::Error::custom)
    }
}

/// The prefix LiteLLM configs use to read a value from the environment: `os.environ/NAME`.
pub const ENV_REFERENCE_PREFIX: &str = "os.environ/";

/// Resolves a `os.environ/NAME` reference to the variable's value; other strings are returned unchanged.
///
/// # Errors
///
/// Returns a message naming the variable when it is not set or not valid Unicode.
pub fn resolve_env_reference(raw: String) -> Result<String, String> {
    let Some(name) = raw.strip_prefix(ENV_REFERENCE_PREFIX) else {
        return Ok(raw);
    };
    std::env::var(name).map_err(|err| match err {
        std::env::VarError::NotPresent => {
            format!("environment variable `{name}` is not set (referenced as `{raw}`)")
        }
        std::env::VarError::NotUnicode(_) => {
            format!("environment variable `{name}` is not valid UTF-8 (referenced as `{raw}`)")
        }
    })
}

/// Deserializes a plain (non-secret) string, resolving an `os.environ/NAME` reference.
///
/// Use it with `#[serde(deserialize_with = "...")]` on optional fields.
///
/// # Errors
///
/// Fails when the value is not a string or names an unset environment variable.
pub fn deserialize_env_string<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    let raw = Option::<String>::deserialize(deserializer)?;
    raw.map(resolve_env_reference)
        .transpose()
        .map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let secret = SecretString::new("sk-very-secret");
        assert_eq!(format!("{secret:?}"), "\"<redacted>\"");
        assert_eq!(secret.expose(), "sk-very-secret");
    }

    #[test]
    fn env_reference_is_resolved_and_missing_variable_is_named() {
        std::env::set_var("MIRROR_CORE_TEST_SECRET", "from-env");
        let secret: SecretString =
            serde_json::from_str("\"os.environ/MIRROR_CORE_TEST_SECRET\"").unwrap();
        assert_eq!(secret.expose(), "from-env");

        let err = serde_json::from_str::<SecretString>("\"os.environ/MIRROR_CORE_TEST_UNSET_VAR\"")
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("environment variable `MIRROR_CORE_TEST_UNSET_VAR` is not set"),
            "{err}"
        );
    }
}
