//! [`Metric`]: the distance functions of [`cdist`](crate::distance::cdist), with SciPy's names
//! and definitions.

use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// A distance between two points `u` and `v` of dimension `d`, defined as SciPy's
/// `scipy.spatial.distance` defines it.
///
/// | metric | definition |
/// | --- | --- |
/// | `euclidean` | `sqrt(sum((u - v)^2))` |
/// | `sqeuclidean` | `sum((u - v)^2)` |
/// | `cityblock` | `sum(abs(u - v))` |
/// | `chebyshev` | `max(abs(u - v))` |
/// | `minkowski(p)` | `sum(abs(u - v)^p)^(1/p)`, `p > 0` (`p = inf` is `chebyshev`) |
/// | `cosine` | `1 - u.v / (norm(u) norm(v))` |
/// | `correlation` | `cosine` of `u - mean(u)` and `v - mean(v)` |
/// | `hamming` | the fraction of coordinates where `u != v` |
/// | `canberra` | `sum(abs(u - v) / (abs(u) + abs(v)))`, terms with a zero denominator skipped |
/// | `braycurtis` | `sum(abs(u - v)) / sum(abs(u + v))` |
///
/// ```
/// use tessera::distance::Metric;
/// assert_eq!("cityblock".parse::<Metric>().unwrap(), Metric::Cityblock);
/// assert_eq!(Metric::parse("minkowski", Some(3.0)).unwrap(), Metric::Minkowski(3.0));
/// assert!("manhattan".parse::<Metric>().unwrap_err().to_string().contains("cityblock"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Metric {
    /// `sqrt(sum((u - v)^2))`.
    Euclidean,
    /// `sum((u - v)^2)`.
    SqEuclidean,
    /// `sum(abs(u - v))` (the L1 or Manhattan distance).
    Cityblock,
    /// `max(abs(u - v))` (the L-infinity distance).
    Chebyshev,
    /// `sum(abs(u - v)^p)^(1/p)` for `p > 0`.
    Minkowski(f64),
    /// `1 - u.v / (norm(u) norm(v))`.
    Cosine,
    /// The cosine distance of the points centred on their own means.
    Correlation,
    /// The fraction of coordinates that differ.
    Hamming,
    /// `sum(abs(u - v) / (abs(u) + abs(v)))`, skipping terms whose denominator is 0.
    Canberra,
    /// `sum(abs(u - v)) / sum(abs(u + v))`.
    BrayCurtis,
}

/// The names [`Metric::parse`] knows.
pub const METRIC_NAMES: [&str; 10] = [
    "euclidean",
    "sqeuclidean",
    "cityblock",
    "chebyshev",
    "minkowski",
    "cosine",
    "correlation",
    "hamming",
    "canberra",
    "braycurtis",
];

impl Metric {
    /// The metric called `name` (SciPy's names), with the exponent `p` for `minkowski` (SciPy's
    /// default 2 when `None`). `p` is refused for the other metrics.
    ///
    /// # Errors
    /// An unknown name (the error lists the known ones), `p <= 0` or NaN, or `p` given for a
    /// metric that takes none.
    pub fn parse(name: &str, p: Option<f64>) -> Result<Metric> {
        let m = match name.trim().to_ascii_lowercase().as_str() {
            "euclidean" => Metric::Euclidean,
            "sqeuclidean" => Metric::SqEuclidean,
            "cityblock" => Metric::Cityblock,
            "chebyshev" => Metric::Chebyshev,
            "minkowski" => Metric::Minkowski(p.unwrap_or(2.0)),
            "cosine" => Metric::Cosine,
            "correlation" => Metric::Correlation,
            "hamming" => Metric::Hamming,
            "canberra" => Metric::Canberra,
            "braycurtis" => Metric::BrayCurtis,
            other => {
                return Err(Error::Invalid(format!(
                    "unknown metric {other:?}; the known metrics are {}",
                    METRIC_NAMES.join(", ")
                )))
            }
        };
        if let (Some(p), false) = (p, matches!(m, Metric::Minkowski(_))) {
            return Err(Error::Invalid(format!(
                "p = {p} is only for the minkowski metric, not {name}"
            )));
        }
        m.validate()?;
        Ok(m)
    }

    /// Checks the metric's parameter.
    ///
    /// # Errors
    /// `minkowski` with `p <= 0` or NaN.
    pub fn validate(self) -> Result<()> {
        match self {
            Metric::Minkowski(p) if p.is_nan() || p <= 0.0 => Err(Error::Invalid(format!(
                "minkowski needs p > 0, got p = {p}"
            ))),
            _ => Ok(()),
        }
    }

    /// SciPy's name of the metric.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Euclidean => "euclidean",
            Metric::SqEuclidean => "sqeuclidean",
            Metric::Cityblock => "cityblock",
            Metric::Chebyshev => "chebyshev",
            Metric::Minkowski(_) => "minkowski",
            Metric::Cosine => "cosine",
            Metric::Correlation => "correlation",
            Metric::Hamming => "hamming",
            Metric::Canberra => "canberra",
            Metric::BrayCurtis => "braycurtis",
        }
    }

    /// Whether the metric is computed through the GEMM identity (from dot products and norms).
    pub fn uses_gemm(self) -> bool {
        matches!(
            self,
            Metric::Euclidean | Metric::SqEuclidean | Metric::Cosine | Metric::Correlation
        )
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Minkowski(p) => write!(f, "minkowski(p={p})"),
            m => f.write_str(m.name()),
        }
    }
}

impl FromStr for Metric {
    type Err = Error;
    fn from_str(s: &str) -> Result<Metric> {
        Metric::parse(s, None)
    }
}
