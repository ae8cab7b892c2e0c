//! The request fields that take a string or an array: `stop` and a message's `content`.
//!
//! Read by a visitor that looks at the JSON value's type, rather than derived with
//! `#[serde(untagged)]`, which buffers the value into serde's content tree and tries each
//! shape in turn; and a wrong value is named for what it is ("invalid type: integer `5`,
//! expected a string or an array of strings") rather than "data did not match any variant".

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

use super::InPart;

/// `stop`: one sequence or several.
pub(super) enum Stop {
    One(String),
    Many(Vec<String>),
}

/// A message's `content`: text, or a list of parts.
pub(super) enum InContent {
    Text(String),
    Parts(Vec<InPart>),
}

/// A shape that is a string or an array of `Item`s.
trait TextOrList: Sized {
    type Item;
    /// What the error says was expected.
    const EXPECTING: &'static str;
    fn text(text: String) -> Self;
    fn list(items: Vec<Self::Item>) -> Self;
}

impl TextOrList for Stop {
    type Item = String;
    const EXPECTING: &'static str = "a string or an array of strings";
    fn text(text: String) -> Self {
        Self::One(text)
    }
    fn list(items: Vec<String>) -> Self {
        Self::Many(items)
    }
}

impl TextOrList for InContent {
    type Item = InPart;
    const EXPECTING: &'static str = "a string or an array of content parts";
    fn text(text: String) -> Self {
        Self::Text(text)
    }
    fn list(items: Vec<InPart>) -> Self {
        Self::Parts(items)
    }
}

struct TextOrListVisitor<T>(PhantomData<T>);

impl<'de, T> Visitor<'de> for TextOrListVisitor<T>
where
    T: TextOrList,
    T::Item: Deserialize<'de>,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
        Ok(T::text(text.to_owned()))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<T, E> {
        Ok(T::text(text))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<T, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(T::list(items))
    }
}

impl<'de> Deserialize<'de> for Stop {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TextOrListVisitor(PhantomData))
    }
}

impl<'de> Deserialize<'de> for InContent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TextOrListVisitor(PhantomData))
    }
}
