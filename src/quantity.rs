//! CPU quantities: parsing Kubernetes CPU strings into whole millicores and back.
//!
//! burst-scaler works in integer millicores everywhere (the kernel's CFS quota granularity is far
//! finer, but Kubernetes itself rounds CPU to 1m). A [`CpuQuantity`] is what users write in a
//! BurstScaler (`250m`, `0.5`, `2`); [`MilliCpu`] is what the engine computes with.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The largest CPU quantity burst-scaler accepts anywhere: 10 000 cores. Far above any node, far
/// below any overflow in the arithmetic the engine does on millicores.
pub const MAX_MILLICORES: u64 = 10_000_000;

/// A whole number of millicores (1000 = one core).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct MilliCpu(pub u64);

impl MilliCpu {
    pub const ZERO: MilliCpu = MilliCpu(0);

    pub fn cores(n: u64) -> Self {
        MilliCpu(n * 1000)
    }

    pub fn as_cores_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    pub fn saturating_sub(self, other: MilliCpu) -> MilliCpu {
        MilliCpu(self.0.saturating_sub(other.0))
    }

    /// Parses a Kubernetes CPU quantity. See [`parse_cpu`].
    pub fn parse(s: &str) -> Result<MilliCpu, QuantityError> {
        parse_cpu(s)
    }
}

impl std::ops::Add for MilliCpu {
    type Output = MilliCpu;
    fn add(self, rhs: MilliCpu) -> MilliCpu {
        MilliCpu(self.0.saturating_add(rhs.0))
    }
}

impl std::ops::AddAssign for MilliCpu {
    fn add_assign(&mut self, rhs: MilliCpu) {
        self.0 = self.0.saturating_add(rhs.0);
    }
}

impl std::iter::Sum for MilliCpu {
    fn sum<I: Iterator<Item = MilliCpu>>(iter: I) -> MilliCpu {
        iter.fold(MilliCpu::ZERO, |a, b| a + b)
    }
}

/// Always in millicores (`1500m`, `2000m`): one unit everywhere keeps reasons easy to compare.
impl fmt::Display for MilliCpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}m", self.0)
    }
}

/// Why a string is not a CPU quantity. Every message quotes the input and says what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("CPU quantity is empty; write millicores like \"250m\" or cores like \"0.5\"")]
    Empty,
    #[error("CPU quantity {0:?} is negative; CPU must be zero or more")]
    Negative(String),
    #[error(
        "CPU quantity {0:?} is not a number; write millicores like \"250m\" or cores like \"0.5\""
    )]
    NotANumber(String),
    #[error(
        "CPU quantity {input:?} uses the suffix {suffix:?}, which is not a CPU unit; use \"m\" (millicores) or no suffix (cores)"
    )]
    BadSuffix { input: String, suffix: String },
    #[error(
        "CPU quantity {0:?} is finer than 1m; Kubernetes CPU has millicore precision (at most 3 decimals in cores)"
    )]
    TooPrecise(String),
    #[error("CPU quantity {0:?} is too large; the most burst-scaler accepts is 10000 cores")]
    TooLarge(String),
}

/// Parses a Kubernetes CPU quantity into millicores.
///
/// Accepted: an unsigned decimal number of cores with at most three fractional digits (`2`,
/// `0.5`, `1.25`) or a whole number of millicores with the `m` suffix (`250m`, `1500m`). Anything
/// else — binary or decimal SI suffixes other than `m` (`1Ki`, `1k`), exponents, signs other
/// than a leading `+`, sub-millicore precision, more than [`MAX_MILLICORES`] — is refused with a
/// message that names what was wrong.
pub fn parse_cpu(input: &str) -> Result<MilliCpu, QuantityError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(QuantityError::Empty);
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.starts_with('-') {
        return Err(QuantityError::Negative(input.to_string()));
    }
    let number_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return Err(QuantityError::NotANumber(input.to_string()));
    }
    let (whole, frac) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    let too_large = || QuantityError::TooLarge(input.to_string());
    let millis = match suffix {
        "m" => {
            if !frac.is_empty() {
                return Err(QuantityError::TooPrecise(input.to_string()));
            }
            parse_digits(whole).ok_or_else(too_large)?
        }
        "" => {
            if frac.len() > 3 {
                return Err(QuantityError::TooPrecise(input.to_string()));
            }
            let whole_millis = parse_digits(if whole.is_empty() { "0" } else { whole })
                .and_then(|w| w.checked_mul(1000))
                .ok_or_else(too_large)?;
            let frac_millis = if frac.is_empty() {
                0
            } else {
                // "5" → 500, "25" → 250, "125" → 125.
                let padded = format!("{frac:0<3}");
                parse_digits(&padded).ok_or_else(too_large)?
            };
            whole_millis
                .checked_add(frac_millis)
                .ok_or_else(too_large)?
        }
        other => {
            if other.chars().all(|c| c.is_ascii_alphanumeric()) && !other.is_empty() {
                return Err(QuantityError::BadSuffix {
                    input: input.to_string(),
                    suffix: other.to_string(),
                });
            }
            return Err(QuantityError::NotANumber(input.to_string()));
        }
    };
    if millis > MAX_MILLICORES {
        return Err(too_large());
    }
    Ok(MilliCpu(millis))
}

fn parse_digits(d: &str) -> Option<u64> {
    if d.is_empty() || !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    d.parse::<u64>().ok()
}

/// A CPU quantity as written by a user in a BurstScaler: a string (`"250m"`) or a bare number of
/// cores (`2`), like Kubernetes' own `resources.limits.cpu`. It keeps the user's spelling so that
/// `kubectl get -o yaml` shows what they wrote; [`CpuQuantity::millis`] parses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuQuantity(pub String);

impl CpuQuantity {
    pub fn new(s: impl Into<String>) -> Self {
        CpuQuantity(s.into())
    }

    pub fn millis(&self) -> Result<MilliCpu, QuantityError> {
        parse_cpu(&self.0)
    }
}

impl From<MilliCpu> for CpuQuantity {
    fn from(m: MilliCpu) -> Self {
        CpuQuantity(m.to_string())
    }
}

impl fmt::Display for CpuQuantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for CpuQuantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for CpuQuantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            I(i64),
            F(f64),
        }
        Ok(CpuQuantity(match Raw::deserialize(d)? {
            Raw::S(s) => s,
            Raw::I(i) => i.to_string(),
            Raw::F(f) => f.to_string(),
        }))
    }
}

/// The regular expression the CRD schema applies to CPU strings (numbers skip it, as in
/// Kubernetes' own int-or-string quantities; the CEL rule below covers them).
pub const CPU_PATTERN: &str = r"^\+?([0-9]+m|[0-9]+(\.[0-9]{0,3})?|\.[0-9]{1,3})$";

impl JsonSchema for CpuQuantity {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "CpuQuantity".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A CPU quantity: millicores (\"250m\") or cores (\"0.5\", 2).",
            "x-kubernetes-int-or-string": true,
            "minimum": 0,
            "pattern": CPU_PATTERN,
            "x-kubernetes-validations": [{
                "rule": "isQuantity(string(self)) && quantity(string(self)).compareTo(quantity('10000')) <= 0",
                "message": "must be a CPU quantity of at most 10000 cores",
            }],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_spellings_users_write() {
        for (s, m) in [
            ("250m", 250),
            ("0.5", 500),
            ("2", 2000),
            ("1500m", 1500),
            ("1.25", 1250),
            (".1", 100),
            ("0", 0),
            ("+3", 3000),
            (" 100m ", 100),
            ("0.100", 100),
            ("10000", 10_000_000),
        ] {
            assert_eq!(parse_cpu(s), Ok(MilliCpu(m)), "{s}");
        }
    }

    #[test]
    fn rejects_with_a_message_that_says_why() {
        let cases: &[(&str, &str)] = &[
            ("abc", "is not a number"),
            ("-1", "is negative"),
            ("1Ki", "suffix \"Ki\""),
            ("1k", "suffix \"k\""),
            ("", "is empty"),
            ("99999999999999999999999", "too large"),
            ("18446744073709551615m", "too large"),
            ("10001", "too large"),
            ("0.0005", "finer than 1m"),
            ("1.5m", "finer than 1m"),
            ("1e3", "suffix \"e3\""),
            ("1..2", "is not a number"),
            ("1 m", "is not a number"),
        ];
        for (s, want) in cases {
            let err = parse_cpu(s).expect_err(s).to_string();
            assert!(err.contains(want), "{s:?}: {err:?} should contain {want:?}");
        }
    }

    #[test]
    fn display_round_trips() {
        for m in [1, 250, 999, 1000, 1500, 2000, 123_456] {
            assert_eq!(parse_cpu(&MilliCpu(m).to_string()), Ok(MilliCpu(m)));
        }
        assert_eq!(MilliCpu(2000).to_string(), "2000m");
        assert_eq!(MilliCpu(0).to_string(), "0m");
    }

    #[test]
    fn quantity_accepts_numbers_and_strings() {
        let q: CpuQuantity = serde_json::from_str("2").expect("int");
        assert_eq!(q.millis(), Ok(MilliCpu(2000)));
        let q: CpuQuantity = serde_json::from_str("0.5").expect("float");
        assert_eq!(q.millis(), Ok(MilliCpu(500)));
        let q: CpuQuantity = serde_json::from_str("\"250m\"").expect("string");
        assert_eq!(q.millis(), Ok(MilliCpu(250)));
        assert_eq!(serde_json::to_string(&q).expect("ser"), "\"250m\"");
    }
}

/// Parses a CPU *usage* as reported by metrics.k8s.io (`199933639n`, `250u`, `12m`, `1`) into
/// millicores, rounded to the nearest millicore. Unlike [`parse_cpu`] (for what users write),
/// nano- and micro-cores are accepted here, because that is what metrics servers report.
pub fn parse_usage(input: &str) -> Result<MilliCpu, QuantityError> {
    let s = input.trim();
    let (digits, divisor) = if let Some(d) = s.strip_suffix('n') {
        (d, 1_000_000u64)
    } else if let Some(d) = s.strip_suffix('u') {
        (d, 1_000)
    } else {
        return parse_cpu(s).or_else(|e| match e {
            // "1.0005" cores from a metrics server: round rather than refuse.
            QuantityError::TooPrecise(_) => s
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && *f >= 0.0 && *f <= (MAX_MILLICORES / 1000) as f64)
                .map(|f| MilliCpu((f * 1000.0).round() as u64))
                .ok_or(e),
            e => Err(e),
        });
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QuantityError::NotANumber(input.to_string()));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| QuantityError::TooLarge(input.to_string()))?;
    Ok(MilliCpu((n + divisor / 2) / divisor))
}

#[cfg(test)]
mod usage_tests {
    use super::*;

    #[test]
    fn metrics_server_spellings() {
        assert_eq!(parse_usage("199933639n"), Ok(MilliCpu(200)));
        assert_eq!(parse_usage("499999n"), Ok(MilliCpu(0)));
        assert_eq!(parse_usage("1500u"), Ok(MilliCpu(2)));
        assert_eq!(parse_usage("12m"), Ok(MilliCpu(12)));
        assert_eq!(parse_usage("2"), Ok(MilliCpu(2000)));
        assert_eq!(parse_usage("0.0004"), Ok(MilliCpu(0)));
        assert!(parse_usage("n").is_err());
        assert!(parse_usage("-5n").is_err());
        assert!(parse_usage("1Ki").is_err());
    }
}
