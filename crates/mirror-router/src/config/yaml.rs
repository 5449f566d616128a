//! Reading YAML: strictly with our error style, or as LiteLLM's PyYAML reads it.

use serde::de::DeserializeSeed;

use crate::error::{nearest, ConfigError};

/// Parses any config-shaped type from YAML with our error style.
///
/// # Errors
///
/// [`ConfigError::Parse`] with location and suggestion.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(
    text: &str,
    origin: &str,
) -> Result<T, ConfigError> {
    let (value, duplicates) = parse_yaml_as_pyyaml(text, origin)?;
    for key in &duplicates {
        tracing::warn!(
            origin,
            key = %key,
            "Duplicate key in the configuration; the last value is used, as in LiteLLM."
        );
    }
    Ok(value)
}

/// Parses YAML as LiteLLM's PyYAML reads it, returning the duplicate keys found (their paths).
///
/// serde_yaml_ng reads YAML 1.2 and refuses duplicate keys; PyYAML reads YAML 1.1, where `20_000` is
/// a number and `yes`/`on` are booleans, takes the last of duplicate keys and applies `<<` merge
/// keys. The strict parse runs first, so errors keep their line and column; only when it fails is
/// the document read again the PyYAML way. If that changes nothing, the strict error stands.
///
/// # Errors
///
/// [`ConfigError::Parse`] with location and suggestion.
pub fn parse_yaml_as_pyyaml<T: serde::de::DeserializeOwned>(
    text: &str,
    origin: &str,
) -> Result<(T, Vec<String>), ConfigError> {
    // serde_yaml_ng keeps a `<<` merge key as an ordinary key, which the strict parse would take
    // for a field; a document with one is always read the PyYAML way.
    let merges = text.contains("<<");
    let strict = match serde_yaml_ng::from_str(text) {
        Ok(value) if !merges => return Ok((value, Vec::new())),
        Ok(_) => None,
        Err(err) => Some(with_suggestion(&err.to_string())),
    };
    let strict = || ConfigError::Parse {
        origin: origin.to_owned(),
        message: strict
            .clone()
            .unwrap_or_else(|| "cannot apply the `<<` merge keys".to_owned()),
    };
    let mut notes = PyYamlNotes::default();
    let Ok(mut tree) = (PyYaml {
        path: String::new(),
        notes: &mut notes,
    })
    .deserialize(serde_yaml_ng::Deserializer::from_str(text)) else {
        return Err(strict());
    };
    if merges {
        tree.apply_merge().map_err(|_| strict())?;
        notes.changed = true;
    }
    if !notes.changed {
        return Err(strict());
    }
    let value = T::deserialize(tree).map_err(|err| ConfigError::Parse {
        origin: origin.to_owned(),
        // Read from a rebuilt tree: no line or column, but the path and the suggestion.
        message: with_suggestion(&err.to_string()),
    })?;
    Ok((value, notes.duplicates))
}

#[derive(Default)]
struct PyYamlNotes {
    duplicates: Vec<String>,
    changed: bool,
}

/// Builds a YAML value the way PyYAML would read the document (see [`parse_yaml_as_pyyaml`]).
struct PyYaml<'n> {
    path: String,
    notes: &'n mut PyYamlNotes,
}

/// A YAML 1.1 number with `_` separators (PyYAML's int and float resolvers), without them.
fn pyyaml_number(text: &str) -> Option<serde_yaml_ng::Value> {
    if !text.contains('_') || text.starts_with('_') || text.ends_with('_') {
        return None;
    }
    let plain: String = text.chars().filter(|c| *c != '_').collect();
    let digits = plain.trim_start_matches(['-', '+']);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&plain)
        .ok()
        .filter(serde_yaml_ng::Value::is_number)
}

/// A YAML 1.1 boolean that YAML 1.2 reads as a string.
fn pyyaml_bool(text: &str) -> Option<bool> {
    match text {
        "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Some(true),
        "no" | "No" | "NO" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for PyYaml<'_> {
    type Value = serde_yaml_ng::Value;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for PyYaml<'_> {
    type Value = serde_yaml_ng::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, value: bool) -> Result<Self::Value, E> {
        Ok(value.into())
    }
    fn visit_i64<E>(self, value: i64) -> Result<Self::Value, E> {
        Ok(value.into())
    }
    fn visit_u64<E>(self, value: u64) -> Result<Self::Value, E> {
        Ok(value.into())
    }
    fn visit_f64<E>(self, value: f64) -> Result<Self::Value, E> {
        Ok(value.into())
    }
    fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
        if let Some(number) = pyyaml_number(value) {
            self.notes.changed = true;
            return Ok(number);
        }
        if let Some(flag) = pyyaml_bool(value) {
            self.notes.changed = true;
            return Ok(flag.into());
        }
        Ok(value.into())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_yaml_ng::Value::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(serde_yaml_ng::Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        serde::de::DeserializeSeed::deserialize(self, deserializer)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(PyYaml {
            path: format!("{}[{}]", self.path, items.len()),
            notes: self.notes,
        })? {
            items.push(item);
        }
        Ok(serde_yaml_ng::Value::Sequence(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut mapping = serde_yaml_ng::Mapping::new();
        while let Some(key) = map.next_key::<serde_yaml_ng::Value>()? {
            let name = match &key {
                serde_yaml_ng::Value::String(name) => name.clone(),
                other => serde_yaml_ng::to_string(other)
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
            };
            let path = if self.path.is_empty() {
                name
            } else {
                format!("{}.{name}", self.path)
            };
            let value = map.next_value_seed(PyYaml {
                path: path.clone(),
                notes: self.notes,
            })?;
            if mapping.insert(key, value).is_some() {
                self.notes.changed = true;
                self.notes.duplicates.push(path);
            }
        }
        Ok(serde_yaml_ng::Value::Mapping(mapping))
    }
}

/// Adds "did you mean" to serde's unknown-field and unknown-variant messages.
pub(crate) fn with_suggestion(message: &str) -> String {
    for (marker, noun) in [
        ("unknown field `", "field"),
        ("unknown variant `", "variant"),
    ] {
        let Some(start) = message.find(marker) else {
            continue;
        };
        let rest = &message[start + marker.len()..];
        let Some(end) = rest.find('`') else { continue };
        let unknown = &rest[..end];
        // After the unknown name's closing backtick, names alternate with the text between them.
        let expected: Vec<&str> = rest[end + 1..]
            .split('`')
            .enumerate()
            .filter_map(|(i, part)| (i % 2 == 1).then_some(part))
            .collect();
        let _ = noun;
        if let Some(best) = nearest(unknown, expected.iter().copied()) {
            return format!("{message} (did you mean `{best}`?)");
        }
    }
    message.to_owned()
}
