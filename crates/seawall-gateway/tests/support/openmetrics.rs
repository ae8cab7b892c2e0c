//! A strict reader of the OpenMetrics text exposition `/metrics` serves: every line is a
//! `# HELP`, `# TYPE` or `# UNIT` comment or a sample `name{label="value",...} number` with
//! label values escaped as the format says (`\\`, `\"`, `\n`; no raw line feed, quote or
//! other escape), and the exposition ends with `# EOF`. Anything else fails the test.

use std::collections::HashMap;

/// A sample: metric name, labels (values unescaped), value.
pub type Sample = (String, Vec<(String, String)>, f64);

/// A parsed exposition.
pub struct Exposition {
    pub samples: Vec<Sample>,
    /// Family name → type (`counter`, `gauge`, `histogram`, ...).
    pub types: HashMap<String, String>,
}

impl Exposition {
    /// Parses `body`, panicking (with the body) on the first line that is not valid.
    pub fn parse(body: &str) -> Self {
        let mut samples = Vec::new();
        let mut types = HashMap::new();
        let mut ended = false;
        for line in body.lines() {
            let bad = |why: &str| -> ! { panic!("{why}: {line:?}\nin:\n{body}") };
            if ended {
                bad("a line after # EOF");
            }
            if line == "# EOF" {
                ended = true;
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (family, kind) = rest.split_once(' ').unwrap_or_else(|| bad("bad TYPE"));
                types.insert(family.to_owned(), kind.to_owned());
                continue;
            }
            if line.starts_with("# HELP ") || line.starts_with("# UNIT ") {
                continue;
            }
            samples.push(sample(line).unwrap_or_else(|why| bad(&why)));
        }
        assert!(ended, "no # EOF at the end:\n{body}");
        Self { samples, types }
    }

    /// The samples of `name` whose labels include every pair of `with`.
    pub fn find<'a>(
        &'a self,
        name: &'a str,
        with: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |(metric, labels, _)| {
            metric == name
                && with
                    .iter()
                    .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
    }

    /// The sum of the samples of `name` whose labels include every pair of `with` (0 when
    /// there are none).
    pub fn sum(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.find(name, with).map(|(_, _, value)| value).sum()
    }

    /// The `q` quantile of histogram `family` for the series with `with`'s labels, as the
    /// upper bound of the bucket it falls in (what `histogram_quantile` bounds it by).
    pub fn quantile(&self, family: &str, with: &[(&str, &str)], q: f64) -> Option<f64> {
        let bucket = format!("{family}_bucket");
        let mut buckets: Vec<(f64, f64)> = self
            .find(&bucket, with)
            .map(|(_, labels, value)| {
                let le = labels
                    .iter()
                    .find(|(k, _)| k == "le")
                    .map(|(_, v)| v.as_str())
                    .expect("a bucket without le");
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().expect("a bad le")
                };
                (le, *value)
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        for pair in buckets.windows(2) {
            assert!(
                pair[0].1 <= pair[1].1,
                "buckets must be cumulative: {buckets:?}"
            );
        }
        let count = buckets.last()?.1;
        let rank = (q * count).ceil().max(1.0);
        buckets
            .iter()
            .find(|(_, cumulative)| *cumulative >= rank)
            .map(|(le, _)| *le)
    }
}

fn sample(line: &str) -> Result<Sample, String> {
    let end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .ok_or("no value")?;
    let (name, mut rest) = line.split_at(end);
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("bad metric name".into());
    }
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        while !rest.starts_with('}') {
            let (label, tail) = rest.split_once("=\"").ok_or("no label value")?;
            if label.is_empty() || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err("bad label name".into());
            }
            let mut value = String::new();
            let mut chars = tail.char_indices();
            rest = loop {
                match chars.next() {
                    Some((i, '"')) => break &tail[i + 1..],
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        _ => return Err("bad escape".into()),
                    },
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated label value".into()),
                }
            };
            labels.push((label.to_owned(), value));
            rest = rest.strip_prefix(',').unwrap_or(rest);
            if !(rest.starts_with('}') || rest.starts_with(|c: char| c.is_ascii_alphabetic())) {
                return Err("bad label list".into());
            }
        }
        rest = &rest[1..];
    }
    let value = match rest.strip_prefix(' ') {
        Some("+Inf") => f64::INFINITY,
        Some(value) => value.parse().map_err(|_| "bad value".to_owned())?,
        None => return Err("no space before the value".into()),
    };
    Ok((name.to_owned(), labels, value))
}
