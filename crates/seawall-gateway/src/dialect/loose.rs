//! JSON read straight into typed structs that never fail on a wrong type: what came instead
//! is kept as its [`Kind`], so each dialect checks its fields in its own order afterwards and
//! words its own errors, as it did walking a `serde_json::Value`.
//!
//! Every value goes through `deserialize_any`, as a `Value` does: the same numbers, strings,
//! escapes and nesting depth are accepted or refused, and the only errors reading can give
//! are those of the JSON itself.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// The JSON type of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Null,
    Bool,
    Integer,
    /// A number written with a fraction or an exponent (or too large for an integer).
    Decimal,
    String,
    Array,
    Object,
}

impl Kind {
    /// The kind of a decoded value.
    pub(crate) fn of(value: &Value) -> Self {
        match value {
            Value::Null => Self::Null,
            Value::Bool(_) => Self::Bool,
            Value::Number(n) if n.is_f64() => Self::Decimal,
            Value::Number(_) => Self::Integer,
            Value::String(_) => Self::String,
            Value::Array(_) => Self::Array,
            Value::Object(_) => Self::Object,
        }
    }

    /// The kind with its article, as OpenAI's errors name it (`an integer`, `null`).
    pub(crate) const fn a_type(self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool => "a boolean",
            Self::Decimal => "a decimal",
            Self::Integer => "an integer",
            Self::String => "a string",
            Self::Array => "an array",
            Self::Object => "an object",
        }
    }
}

/// A field read as a string or a boolean, whatever came.
pub(crate) trait Field {
    /// Its JSON kind.
    fn kind(&self) -> Kind;
    /// The string, if it is one.
    fn as_text(&self) -> Option<&str>;
    /// The boolean, if it is one.
    fn as_flag(&self) -> Option<bool>;
}

impl Field for Value {
    fn kind(&self) -> Kind {
        Kind::of(self)
    }
    fn as_text(&self) -> Option<&str> {
        self.as_str()
    }
    fn as_flag(&self) -> Option<bool> {
        self.as_bool()
    }
}

/// A field that should be a string (or a boolean): the value, or the kind that came instead.
#[derive(Debug)]
pub(crate) enum Scalar {
    Str(String),
    Bool(bool),
    Other(Kind),
}

impl Field for Scalar {
    fn kind(&self) -> Kind {
        match self {
            Self::Str(_) => Kind::String,
            Self::Bool(_) => Kind::Bool,
            Self::Other(kind) => *kind,
        }
    }
    fn as_text(&self) -> Option<&str> {
        match self {
            Self::Str(text) => Some(text),
            _ => None,
        }
    }
    fn as_flag(&self) -> Option<bool> {
        match self {
            Self::Bool(flag) => Some(*flag),
            _ => None,
        }
    }
}

/// Numbers and `null` become `$other(kind)`.
macro_rules! other_numbers {
    ($other:expr) => {
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($other(Kind::Integer))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($other(Kind::Integer))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($other(Kind::Decimal))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($other(Kind::Null))
        }
    };
}

/// Arrays and objects read through (and checked as JSON) to become `$other(kind)`.
macro_rules! other_containers {
    ($other:expr) => {
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            skip_seq(seq)?;
            Ok($other(Kind::Array))
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            skip_map(map)?;
            Ok($other(Kind::Object))
        }
    };
}

fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<Skip>()?.is_some() {}
    Ok(())
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_key::<Skip>()?.is_some() {
        map.next_value::<Skip>()?;
    }
    Ok(())
}

/// A value read as a `Value` would be (so refused where a `Value` would be: a number out of
/// range, nesting past the recursion limit), then dropped. Unlike `IgnoredAny`, which skips
/// nested values without counting their depth.
pub(crate) struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SkipVisitor;
        impl<'de> Visitor<'de> for SkipVisitor {
            type Value = Skip;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            other_numbers!(|_| Skip);
            other_containers!(|_| Skip);
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Skip, E> {
                Ok(Skip)
            }
        }
        deserializer.deserialize_any(SkipVisitor)
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            other_numbers!(Scalar::Other);
            other_containers!(Scalar::Other);
            fn visit_bool<E: de::Error>(self, flag: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(flag))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(text.to_owned()))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// An object key, borrowed from the body unless it holds escapes.
pub(crate) struct Name<'de>(pub(crate) Cow<'de, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, name: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(name)))
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(name.to_owned())))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

/// A struct read from the entries of a JSON object, one key at a time.
pub(crate) trait FromMap<'de>: Sized {
    /// Reads the entries; a repeated key's last value holds, as in a `Value`.
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
}

/// Implements [`FromMap`] for a `Default` struct whose fields are `Option`s named by their
/// JSON keys: `read_fields!(Tool { "type" => kind, "name" => name } else skip)` reads
/// through every other entry (with the recursion limit); `else keep in rest` keeps them in
/// the struct's `rest` map, for pass-through.
macro_rules! read_fields {
    (@other skip, $map:ident, $read:ident, $name:ident) => {{
        $map.next_value::<$crate::dialect::loose::Skip>()?;
    }};
    (@other keep in $rest:ident, $map:ident, $read:ident, $name:ident) => {{
        $read.$rest.insert($name.into_owned(), $map.next_value()?);
    }};
    ($ty:ty { $($json:literal => $field:ident),* $(,)? } else $($other:tt)+) => {
        impl<'de> $crate::dialect::loose::FromMap<'de> for $ty {
            fn from_map<A: serde::de::MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
                let mut read = Self::default();
                while let Some($crate::dialect::loose::Name(name)) = map.next_key()? {
                    match &*name {
                        $($json => read.$field = Some(map.next_value()?),)*
                        _ => read_fields!(@other $($other)+, map, read, name),
                    }
                }
                Ok(read)
            }
        }
    };
}
pub(crate) use read_fields;

/// An object read as `T`, or the kind that came instead.
#[derive(Debug)]
pub(crate) enum Obj<T> {
    Map(T),
    Other(Kind),
}

impl<'de, T: FromMap<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: FromMap<'de>> Visitor<'de> for ObjVisitor<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            other_numbers!(Obj::Other);
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Obj::Other(Kind::Bool))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Obj<T>, E> {
                Ok(Obj::Other(Kind::String))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Obj<T>, A::Error> {
                skip_seq(seq)?;
                Ok(Obj::Other(Kind::Array))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
                T::from_map(map).map(Obj::Map)
            }
        }
        deserializer.deserialize_any(ObjVisitor(std::marker::PhantomData))
    }
}

/// An array of `T`, or the kind that came instead.
#[derive(Debug)]
pub(crate) enum Items<T> {
    List(Vec<T>),
    Other(Kind),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Items<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemsVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ItemsVisitor<T> {
            type Value = Items<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            other_numbers!(Items::Other);
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Items::Other(Kind::Bool))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Items<T>, E> {
                Ok(Items::Other(Kind::String))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Items<T>, A::Error> {
                read_seq(seq).map(Items::List)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Items<T>, A::Error> {
                skip_map(map)?;
                Ok(Items::Other(Kind::Object))
            }
        }
        deserializer.deserialize_any(ItemsVisitor(std::marker::PhantomData))
    }
}

fn read_seq<'de, A: SeqAccess<'de>, T: Deserialize<'de>>(mut seq: A) -> Result<Vec<T>, A::Error> {
    let mut items = Vec::new();
    while let Some(item) = seq.next_element()? {
        items.push(item);
    }
    Ok(items)
}

/// A string or an array of `T` (message content, say), or the kind that came instead.
#[derive(Debug)]
pub(crate) enum TextOr<T> {
    Text(String),
    List(Vec<T>),
    Other(Kind),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for TextOr<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextOrVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for TextOrVisitor<T> {
            type Value = TextOr<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            other_numbers!(TextOr::Other);
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(TextOr::Other(Kind::Bool))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<TextOr<T>, E> {
                Ok(TextOr::Text(text.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<TextOr<T>, A::Error> {
                read_seq(seq).map(TextOr::List)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TextOr<T>, A::Error> {
                skip_map(map)?;
                Ok(TextOr::Other(Kind::Object))
            }
        }
        deserializer.deserialize_any(TextOrVisitor(std::marker::PhantomData))
    }
}
