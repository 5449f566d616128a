//! Finds the line and column of a field path (as validation errors write them) in YAML text.
//!
//! serde_yaml_ng keeps no spans in its values, but it marks every error with where the event being
//! read starts. So the locator walks the document with a seed that skips everything but the path and
//! fails on purpose at the value the path names; the error's location is the value's.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::error::Position;

/// The error raised at the value sought.
const FOUND: &str = "mirror-locate: found";

/// The line and column of the value at `path` in `text`, e.g. for
/// ``model_list[2] (`gpt-4`).litellm_params.silent_model``. Descriptions in `` (`...`) `` are
/// skipped; a map key may contain dots. Where the path goes through a list without an index, the
/// list's position is returned. None when the path is not in the text.
pub(crate) fn locate(text: &str, path: &str) -> Option<Position> {
    let path = strip_descriptions(path);
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    match (Seek { rest: &path }).deserialize(deserializer) {
        Err(err) if err.to_string().contains(FOUND) => err.location().map(|at| Position {
            line: at.line(),
            column: at.column(),
        }),
        _ => None,
    }
}

/// Removes `` (`name`)`` after list indexes.
fn strip_descriptions(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(start) = rest.find(" (`") {
        out.push_str(&rest[..start]);
        match rest[start..].find("`)") {
            Some(end) => rest = &rest[start + end + 2..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

struct Seek<'p> {
    rest: &'p str,
}

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Seek<'_> {
    fn found<E: de::Error>() -> Result<(), E> {
        Err(E::custom(FOUND))
    }
}

impl<'de> Visitor<'de> for Seek<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.rest.is_empty() {
            return Self::found();
        }
        while let Some(key) = map.next_key::<Key>()? {
            let after = key.0.as_deref().and_then(|key| {
                let after = self.rest.strip_prefix(key)?;
                if after.is_empty() || after.starts_with('[') {
                    Some(after)
                } else {
                    after.strip_prefix('.')
                }
            });
            match after {
                Some(rest) => return map.next_value_seed(Seek { rest }),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let index = self.rest.strip_prefix('[').and_then(|inner| {
            let (number, after) = inner.split_once(']')?;
            Some((number.parse::<usize>().ok()?, after))
        });
        let Some((index, after)) = index else {
            return Self::found();
        };
        let after = after.strip_prefix('.').unwrap_or(after);
        let mut at = 0;
        while at < index {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
            at += 1;
        }
        seq.next_element_seed(Seek { rest: after })?;
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.scalar()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Seek<'_> {
    /// At a scalar: found if the path ends here, else the path is not in the text.
    fn scalar<E: de::Error>(&self) -> Result<(), E> {
        if self.rest.is_empty() {
            Self::found()
        } else {
            Ok(())
        }
    }
}

/// A map key as text; keys that are not scalars match nothing.
struct Key(Option<String>);

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(Key(Some(key.to_owned())))
            }
            fn visit_bool<E: de::Error>(self, key: bool) -> Result<Key, E> {
                Ok(Key(Some(key.to_string())))
            }
            fn visit_i64<E: de::Error>(self, key: i64) -> Result<Key, E> {
                Ok(Key(Some(key.to_string())))
            }
            fn visit_u64<E: de::Error>(self, key: u64) -> Result<Key, E> {
                Ok(Key(Some(key.to_string())))
            }
            fn visit_f64<E: de::Error>(self, key: f64) -> Result<Key, E> {
                Ok(Key(Some(key.to_string())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Key, E> {
                Ok(Key(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Key, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Key(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Key, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Key(None))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{expect, Expect};

    use super::locate;

    #[track_caller]
    fn check(path: &str, expect: Expect) {
        let text = "\
model_list:
  - model_name: a
    litellm_params: {model: mock/a}
  - model_name: gpt-3.5-turbo
    litellm_params:
      model: mock/b
      silent_model: [x, y]
      timeout: 1e300
router_settings:
  fallbacks: [{gpt-3.5-turbo: [a]}]
  model_group_alias: {gpt-3.5-turbo: a}
mirror_settings:
  silent_max_bytes: 0
";
        let found = locate(text, path).map(|at| at.to_string());
        expect.assert_eq(&format!("{found:?}"));
    }

    #[test]
    fn finds_values_by_path() {
        check(
            "model_list[1] (`gpt-3.5-turbo`).litellm_params.timeout",
            expect![[r#"Some("line 8 column 16")"#]],
        );
        check(
            "model_list[1] (`gpt-3.5-turbo`).litellm_params.silent_model",
            expect![[r#"Some("line 7 column 21")"#]],
        );
        check(
            "model_list[0] (`a`).litellm_params.model",
            expect![[r#"Some("line 3 column 29")"#]],
        );
        check("model_list[1]", expect![[r#"Some("line 4 column 5")"#]]);
        check(
            "router_settings.model_group_alias.gpt-3.5-turbo",
            expect![[r#"Some("line 11 column 38")"#]],
        );
        // A list without an index: the list.
        check(
            "router_settings.fallbacks.gpt-3.5-turbo",
            expect![[r#"Some("line 10 column 14")"#]],
        );
        check(
            "mirror_settings.silent_max_bytes",
            expect![[r#"Some("line 13 column 21")"#]],
        );
        check(
            "model_list[1] (`gpt-3.5-turbo`).model_info.id",
            expect!["None"],
        );
        check("model_list[7].litellm_params", expect!["None"]);
        check("nowhere", expect!["None"]);
    }
}
