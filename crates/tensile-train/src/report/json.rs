//! Floats in `evaluation.json` that survive JSON when not finite: `NaN`, `inf` and `-inf` as
//! the strings `"NaN"`, `"inf"`, `"-inf"` (serde_json alone writes `null` and then refuses to
//! read it back), as the history does in checkpoints. Used through `#[serde(with = …)]`.

use serde::{Deserialize, Serialize};

/// An `f64` that survives JSON when not finite: `"NaN"`, `"inf"`, `"-inf"`.
#[derive(Debug, Clone, Copy)]
struct JsonF64(f64);

impl Serialize for JsonF64 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self.0 {
            v if v.is_finite() => s.serialize_f64(v),
            v if v.is_nan() => s.serialize_str("NaN"),
            v if v > 0.0 => s.serialize_str("inf"),
            _ => s.serialize_str("-inf"),
        }
    }
}

impl<'de> Deserialize<'de> for JsonF64 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(v) => Ok(JsonF64(v)),
            Raw::Text(t) => match t.as_str() {
                "NaN" => Ok(JsonF64(f64::NAN)),
                "inf" => Ok(JsonF64(f64::INFINITY)),
                "-inf" => Ok(JsonF64(f64::NEG_INFINITY)),
                _ => Err(serde::de::Error::custom(format!(
                    "found \"{t}\"; expected a number, \"NaN\", \"inf\" or \"-inf\""
                ))),
            },
        }
    }
}

pub(super) mod json_f64 {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::JsonF64;

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        JsonF64(*v).serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        JsonF64::deserialize(d).map(|v| v.0)
    }
}

pub(super) mod json_f64_opt {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::JsonF64;

    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        v.map(JsonF64).serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Ok(Option::<JsonF64>::deserialize(d)?.map(|v| v.0))
    }
}

pub(super) mod json_f64_map {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::JsonF64;

    pub fn serialize<S: Serializer>(m: &BTreeMap<String, f64>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(m.iter().map(|(k, v)| (k, JsonF64(*v))))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
        Ok(BTreeMap::<String, JsonF64>::deserialize(d)?.into_iter().map(|(k, v)| (k, v.0)).collect())
    }
}

pub(super) mod json_f64_map_opt {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::JsonF64;

    pub fn serialize<S: Serializer>(m: &Option<BTreeMap<String, f64>>, s: S) -> Result<S::Ok, S::Error> {
        m.as_ref().map(|m| m.iter().map(|(k, v)| (k.clone(), JsonF64(*v))).collect::<BTreeMap<_, _>>()).serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<BTreeMap<String, f64>>, D::Error> {
        let m = Option::<BTreeMap<String, JsonF64>>::deserialize(d)?;
        Ok(m.map(|m| m.into_iter().map(|(k, v)| (k, v.0)).collect()))
    }
}

pub(super) mod json_f64_pairs {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::JsonF64;

    pub fn serialize<S: Serializer>(v: &[(String, f64)], s: S) -> Result<S::Ok, S::Error> {
        v.iter().map(|(k, x)| (k, JsonF64(*x))).collect::<Vec<_>>().serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, f64)>, D::Error> {
        Ok(Vec::<(String, JsonF64)>::deserialize(d)?.into_iter().map(|(k, v)| (k, v.0)).collect())
    }
}
