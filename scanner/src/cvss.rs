//! CVSS scores from vector strings: v3.0 and v3.1 base scores (`CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H`) by
//! the formulas of the FIRST specification, and v4.0 scores through RustSec's `cvss` crate, because a v4 score is
//! looked up in the specification's table of macro-vector scores rather than computed by a formula.

/// The score of a CVSS v4.0 vector, `None` when the string is not one.
pub fn v4_score(vector: &str) -> Option<f64> {
    let vector: ::cvss::v4::Vector = vector.parse().ok()?;
    Some(vector.score().value())
}

/// The base score of a CVSS v3.x vector, `None` when the string is not a well-formed v3.0 or v3.1 vector with every
/// base metric exactly once. Temporal and environmental metrics may follow; they do not change the base score.
pub fn v3_base_score(vector: &str) -> Option<f64> {
    let metrics = vector.strip_prefix("CVSS:3.1/").or_else(|| vector.strip_prefix("CVSS:3.0/"))?;
    let mut base = BaseMetrics::default();
    for metric in metrics.split('/') {
        let (name, value) = metric.split_once(':')?;
        let slot = match name {
            "AV" => &mut base.attack_vector,
            "AC" => &mut base.attack_complexity,
            "PR" => &mut base.privileges_required,
            "UI" => &mut base.user_interaction,
            "S" => &mut base.scope,
            "C" => &mut base.confidentiality,
            "I" => &mut base.integrity,
            "A" => &mut base.availability,
            "E" | "RL" | "RC" | "CR" | "IR" | "AR" | "MAV" | "MAC" | "MPR" | "MUI" | "MS" | "MC" | "MI" | "MA" => continue,
            _ => return None,
        };
        if slot.replace(value).is_some() {
            return None;
        }
    }
    base.score()
}

#[derive(Default)]
struct BaseMetrics<'a> {
    attack_vector: Option<&'a str>,
    attack_complexity: Option<&'a str>,
    privileges_required: Option<&'a str>,
    user_interaction: Option<&'a str>,
    scope: Option<&'a str>,
    confidentiality: Option<&'a str>,
    integrity: Option<&'a str>,
    availability: Option<&'a str>,
}

impl BaseMetrics<'_> {
    fn score(&self) -> Option<f64> {
        let scope_changed = match self.scope? {
            "U" => false,
            "C" => true,
            _ => return None,
        };
        let attack_vector = match self.attack_vector? {
            "N" => 0.85,
            "A" => 0.62,
            "L" => 0.55,
            "P" => 0.2,
            _ => return None,
        };
        let attack_complexity = match self.attack_complexity? {
            "L" => 0.77,
            "H" => 0.44,
            _ => return None,
        };
        // Privileges weigh less when the attack reaches beyond the vulnerable component.
        let privileges_required = match (self.privileges_required?, scope_changed) {
            ("N", _) => 0.85,
            ("L", false) => 0.62,
            ("L", true) => 0.68,
            ("H", false) => 0.27,
            ("H", true) => 0.5,
            _ => return None,
        };
        let user_interaction = match self.user_interaction? {
            "N" => 0.85,
            "R" => 0.62,
            _ => return None,
        };
        let impact_weight = |value: &str| match value {
            "H" => Some(0.56),
            "L" => Some(0.22),
            "N" => Some(0.0),
            _ => None,
        };
        let confidentiality = impact_weight(self.confidentiality?)?;
        let integrity = impact_weight(self.integrity?)?;
        let availability = impact_weight(self.availability?)?;

        let impact_sub_score: f64 = 1.0 - (1.0 - confidentiality) * (1.0 - integrity) * (1.0 - availability);
        let impact = if scope_changed {
            7.52 * (impact_sub_score - 0.029) - 3.25 * (impact_sub_score - 0.02).powi(15)
        } else {
            6.42 * impact_sub_score
        };
        let exploitability = 8.22 * attack_vector * attack_complexity * privileges_required * user_interaction;
        if impact <= 0.0 {
            return Some(0.0);
        }
        let combined: f64 = if scope_changed { 1.08 * (impact + exploitability) } else { impact + exploitability };
        Some(round_up(combined.min(10.0)))
    }
}

/// Rounds up to one decimal, as v3.1 defines it: through an integer, so that floating-point noise (4.000000000000001)
/// does not round a whole tenth up. v3.0 defines the same mathematical rounding without that guard, so both versions
/// use this.
fn round_up(value: f64) -> f64 {
    let scaled = (value * 100_000.0).round() as i64;
    if scaled % 10_000 == 0 { scaled as f64 / 100_000.0 } else { (scaled / 10_000 + 1) as f64 / 10.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_scores() {
        let cases = [
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", 7.5),
            ("CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:L/A:L", 5.0),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
            ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8),
            ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N", 5.9),
            ("CVSS:3.0/AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N", 6.4),
            ("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", 1.6),
            ("CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:C/C:H/I:H/A:H", 9.1),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
        ];
        for (vector, score) in cases {
            assert_eq!(v3_base_score(vector), Some(score), "{vector}");
        }
    }

    #[test]
    fn temporal_and_environmental_metrics_leave_the_base_score() {
        assert_eq!(v3_base_score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:U/RL:O/RC:C/CR:L/MAV:P"), Some(9.8));
    }

    #[test]
    fn malformed_vectors_have_no_score() {
        for vector in [
            "",
            "CVSS:2.0/AV:N/AC:L/Au:N/C:P/I:P/A:P",
            "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:H/SC:N/SI:N/SA:N",
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H",
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/A:L",
            "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/ZZ:1",
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/",
        ] {
            assert_eq!(v3_base_score(vector), None, "{vector}");
        }
    }

    /// Scores as the FIRST v4.0 calculator gives them.
    #[test]
    fn v4_scores() {
        let cases = [
            ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", 9.3),
            ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:H/SC:N/SI:N/SA:N", 8.7),
            ("CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:P/VC:N/VI:N/VA:N/SC:L/SI:L/SA:L", 2.3),
            ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N", 0.0),
        ];
        for (vector, score) in cases {
            assert_eq!(v4_score(vector), Some(score), "{vector}");
        }
        assert_eq!(v4_score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"), None);
        assert_eq!(v4_score("CVSS:4.0/AV:N"), None);
    }
}
