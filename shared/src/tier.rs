//! The registry's service tiers (ACR's SKUs): Basic, Standard and Premium, what each includes, and which features
//! need which tier.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize};

/// A service tier. Spelled in any case on input, lowercase on output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sku {
    Basic,
    Standard,
    Premium,
}

/// What a tier includes, ACR's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SkuLimits {
    pub storage_bytes: u64,
    pub read_ops_per_minute: u64,
    pub write_ops_per_minute: u64,
    /// Repository-scoped tokens, and scope maps, each.
    pub tokens: u64,
    pub scope_maps: u64,
    pub webhooks: u64,
}

const GIB: u64 = 1 << 30;

impl Sku {
    pub const ALL: [Sku; 3] = [Sku::Basic, Sku::Standard, Sku::Premium];

    pub fn as_str(self) -> &'static str {
        match self {
            Sku::Basic => "basic",
            Sku::Standard => "standard",
            Sku::Premium => "premium",
        }
    }

    pub fn limits(self) -> SkuLimits {
        let (storage_gib, reads, writes, tokens, webhooks) = match self {
            Sku::Basic => (10, 1_000, 100, 100, 2),
            Sku::Standard => (100, 3_000, 500, 500, 10),
            Sku::Premium => (500, 10_000, 2_000, 50_000, 500),
        };
        SkuLimits {
            storage_bytes: storage_gib * GIB,
            read_ops_per_minute: reads,
            write_ops_per_minute: writes,
            tokens,
            scope_maps: tokens,
            webhooks,
        }
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown tier {0:?}: basic, standard or premium")]
pub struct UnknownSku(pub String);

impl FromStr for Sku {
    type Err = UnknownSku;

    fn from_str(text: &str) -> Result<Sku, UnknownSku> {
        Sku::ALL.into_iter().find(|sku| sku.as_str().eq_ignore_ascii_case(text)).ok_or_else(|| UnknownSku(text.to_owned()))
    }
}

impl<'de> Deserialize<'de> for Sku {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Sku, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A feature only some tiers have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    AnonymousPull,
    GeoReplication,
    CustomerManagedKeys,
    PrivateEndpoint,
    RetentionPolicy,
}

impl Feature {
    /// The lowest tier that has it.
    pub fn minimum_sku(self) -> Sku {
        match self {
            Feature::AnonymousPull => Sku::Standard,
            Feature::GeoReplication | Feature::CustomerManagedKeys | Feature::PrivateEndpoint | Feature::RetentionPolicy => Sku::Premium,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Feature::AnonymousPull => "anonymous pull",
            Feature::GeoReplication => "geo-replication",
            Feature::CustomerManagedKeys => "customer-managed keys",
            Feature::PrivateEndpoint => "a private endpoint",
            Feature::RetentionPolicy => "a retention policy",
        }
    }

    /// Whether a registry of tier `sku` (none: no tier set, nothing limited) may use it.
    pub fn allowed_on(self, sku: Option<Sku>) -> bool {
        sku.is_none_or(|sku| sku >= self.minimum_sku())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_parse_in_any_case_and_print_lowercase() {
        assert_eq!("PREMIUM".parse::<Sku>(), Ok(Sku::Premium));
        assert_eq!("Basic".parse::<Sku>(), Ok(Sku::Basic));
        assert_eq!("gold".parse::<Sku>(), Err(UnknownSku("gold".to_owned())));
        assert_eq!(serde_json::to_value(Sku::Standard).unwrap(), "standard");
        assert_eq!(serde_json::from_value::<Sku>("StAnDaRd".into()).unwrap(), Sku::Standard);
    }

    #[test]
    fn limits_are_acrs() {
        let table: Vec<(u64, u64, u64, u64, u64)> = Sku::ALL
            .iter()
            .map(|sku| {
                let limits = sku.limits();
                (limits.storage_bytes / GIB, limits.read_ops_per_minute, limits.write_ops_per_minute, limits.tokens, limits.webhooks)
            })
            .collect();
        assert_eq!(table, [(10, 1_000, 100, 100, 2), (100, 3_000, 500, 500, 10), (500, 10_000, 2_000, 50_000, 500)]);
        assert!(Sku::ALL.iter().all(|sku| sku.limits().tokens == sku.limits().scope_maps));
    }

    #[test]
    fn features_need_their_tier() {
        assert!(!Feature::AnonymousPull.allowed_on(Some(Sku::Basic)));
        assert!(Feature::AnonymousPull.allowed_on(Some(Sku::Standard)));
        assert!(!Feature::GeoReplication.allowed_on(Some(Sku::Standard)));
        assert!(Feature::RetentionPolicy.allowed_on(Some(Sku::Premium)));
        assert!(Feature::PrivateEndpoint.allowed_on(None), "no tier set: nothing is limited");
    }
}
