//! What a region offers a launch: whether the profile's image exists there, is not
//! deprecated and fits the instance type's architecture, and which zones offer the
//! instance type. EC2 refuses some of these only at RunInstances (`Unsupported`,
//! `InvalidParameterValue`) and launches a deprecated image by id without a word;
//! cerveza says so per host before anything is claimed or made, with the nearest
//! alternative. Read once per region, image and type per command (three describes at
//! once); an image given as `resolve:ssm:…` is resolved by EC2 at launch and not read.

use crate::names::{Region, Zone};

/// What one region says about one image and one instance type.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Offering {
    /// The image, when one was asked about and exists in the region.
    pub image: Option<Image>,
    /// The instance type's architectures (`x86_64`, `arm64`); empty when EC2 does not
    /// know the type.
    pub architectures: Vec<String>,
    /// The zones of the region that offer the instance type.
    pub zones: Vec<Zone>,
}

/// An image as DescribeImages shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// `ami-…`.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `x86_64`, `arm64`, …
    pub architecture: String,
    /// When its owner deprecated it (or will), seconds since the epoch.
    pub deprecated_at: Option<i64>,
}

/// The image id a launch reads, or `None` for `resolve:ssm:…` (EC2 resolves it).
pub fn image_to_read(ami: &str) -> Option<&str> {
    (!ami.starts_with("resolve:ssm:")).then_some(ami)
}

/// Why a host of instance type `itype` and image `ami` cannot launch in `zone` of
/// `region`, from `offer`; `None` when nothing is wrong. `now` is seconds since the epoch.
pub fn problem(offer: &Offering, zone: &Zone, ami: &str, itype: &str, now: i64) -> Option<String> {
    let region = zone.region();
    let image_id = image_to_read(ami);
    if offer.architectures.is_empty() {
        return Some(format!(
            "instance type {itype} does not exist in {region}: check the profile's instance-type"
        ));
    }
    if !offer.zones.contains(zone) {
        return Some(not_offered(&region, zone, itype, &offer.zones));
    }
    // An SSM parameter is EC2's to resolve at launch.
    let id = image_id?;
    let Some(image) = &offer.image else {
        return Some(format!(
            "image {id} does not exist in {region} (or this account may not use it): AMIs are regional; give the profile's ami: an image of {region}, or a resolve:ssm: parameter"
        ));
    };
    if let Some(at) = image.deprecated_at.filter(|at| *at <= now) {
        return Some(format!(
            "image {id} ({}) was deprecated on {}: its owner no longer maintains it; choose a current image (a resolve:ssm: parameter always names the newest)",
            image.name,
            date(at)
        ));
    }
    if !offer.architectures.contains(&image.architecture) {
        let nearest = nearest_type(itype, &image.architecture)
            .map(|t| format!(" such as {t}"))
            .unwrap_or_default();
        return Some(format!(
            "image {id} is {}, and {itype} runs {}: choose an {} instance type{nearest}, or an image for {}",
            image.architecture,
            offer.architectures.join(", "),
            image.architecture,
            offer.architectures.join(" or ")
        ));
    }
    None
}

fn not_offered(region: &Region, zone: &Zone, itype: &str, zones: &[Zone]) -> String {
    match zones.first() {
        None => format!("instance type {itype} is offered in no zone of {region}: choose another instance type or region"),
        Some(first) => format!(
            "instance type {itype} is not offered in {zone}; it is in {} (--zone {first}), or choose another instance type",
            zones.iter().map(Zone::as_str).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// The nearest instance type of architecture `arch` to `itype`: the same size in the
/// current family of the same kind (general purpose, compute, memory, burstable).
pub fn nearest_type(itype: &str, arch: &str) -> Option<String> {
    let (family, size) = itype.split_once('.')?;
    let kind = family.chars().next()?;
    let burstable = family.starts_with('t');
    let to = match (arch, kind, burstable) {
        ("arm64", _, true) => "t4g",
        ("arm64", 'm', _) => "m7g",
        ("arm64", 'c', _) => "c7g",
        ("arm64", 'r', _) => "r7g",
        ("x86_64", _, true) => "t3",
        ("x86_64", 'm', _) => "m7i",
        ("x86_64", 'c', _) => "c7i",
        ("x86_64", 'r', _) => "r7i",
        _ => return None,
    };
    // Graviton and current Intel families have no `nano`/`micro` gaps in these kinds,
    // but the largest sizes differ; keep the common ones.
    let common = [
        "nano", "micro", "small", "medium", "large", "xlarge", "2xlarge", "4xlarge", "8xlarge",
        "12xlarge", "16xlarge",
    ];
    (common.contains(&size) && (burstable || !["nano", "micro", "small"].contains(&size)))
        .then(|| format!("{to}.{size}"))
}

/// `2025-06-30` of seconds since the epoch (UTC).
fn date(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(z: &str) -> Zone {
        Zone::parse(z).unwrap()
    }

    fn offer(arch: &str, zones: &[&str], deprecated_at: Option<i64>) -> Offering {
        Offering {
            image: Some(Image {
                id: "ami-0123456789abcdef0".into(),
                name: "ubuntu".into(),
                architecture: arch.into(),
                deprecated_at,
            }),
            architectures: vec!["x86_64".into()],
            zones: zones.iter().map(|z| zone(z)).collect(),
        }
    }

    const AMI: &str = "ami-0123456789abcdef0";
    const NOW: i64 = 1_780_000_000; // 2026-05-28

    #[test]
    fn a_launch_that_fits_has_no_problem() {
        let o = offer("x86_64", &["us-east-1a", "us-east-1b"], Some(NOW + 86_400));
        assert_eq!(problem(&o, &zone("us-east-1a"), AMI, "t3.small", NOW), None);
        // An SSM parameter is EC2's to resolve: only the type is checked.
        let ssm = Offering {
            image: None,
            ..o.clone()
        };
        assert_eq!(
            problem(&ssm, &zone("us-east-1a"), "resolve:ssm:/x", "t3.small", NOW),
            None
        );
    }

    #[test]
    fn a_type_not_offered_in_the_zone_names_the_zones_that_offer_it() {
        let o = offer("x86_64", &["us-east-1a", "us-east-1b", "us-east-1d"], None);
        assert_eq!(
            problem(&o, &zone("us-east-1e"), AMI, "c5.large", NOW).unwrap(),
            "instance type c5.large is not offered in us-east-1e; it is in us-east-1a, us-east-1b, us-east-1d (--zone us-east-1a), or choose another instance type"
        );
        let none = offer("x86_64", &[], None);
        assert!(problem(&none, &zone("us-east-1e"), AMI, "p5.48xlarge", NOW)
            .unwrap()
            .contains("offered in no zone of us-east-1"));
        let unknown = Offering {
            architectures: vec![],
            ..none
        };
        assert!(problem(&unknown, &zone("us-east-1a"), AMI, "t9.small", NOW)
            .unwrap()
            .starts_with("instance type t9.small does not exist in us-east-1"));
    }

    #[test]
    fn a_missing_deprecated_or_other_architecture_image_is_named() {
        let z = zone("us-east-1a");
        let missing = Offering {
            image: None,
            ..offer("x86_64", &["us-east-1a"], None)
        };
        assert!(problem(&missing, &z, AMI, "t3.small", NOW)
            .unwrap()
            .starts_with("image ami-0123456789abcdef0 does not exist in us-east-1"));
        let old = offer("x86_64", &["us-east-1a"], Some(1_751_241_600));
        assert_eq!(
            problem(&old, &z, AMI, "t3.small", NOW).unwrap(),
            "image ami-0123456789abcdef0 (ubuntu) was deprecated on 2025-06-30: its owner no longer maintains it; choose a current image (a resolve:ssm: parameter always names the newest)"
        );
        let arm = offer("arm64", &["us-east-1a"], None);
        assert_eq!(
            problem(&arm, &z, AMI, "t3.small", NOW).unwrap(),
            "image ami-0123456789abcdef0 is arm64, and t3.small runs x86_64: choose an arm64 instance type such as t4g.small, or an image for x86_64"
        );
    }

    #[test]
    fn nearest_types_keep_the_kind_and_size() {
        assert_eq!(
            nearest_type("t3.small", "arm64").as_deref(),
            Some("t4g.small")
        );
        assert_eq!(
            nearest_type("r5.xlarge", "arm64").as_deref(),
            Some("r7g.xlarge")
        );
        assert_eq!(
            nearest_type("c7g.large", "x86_64").as_deref(),
            Some("c7i.large")
        );
        assert_eq!(nearest_type("m1.small", "arm64"), None);
        assert_eq!(nearest_type("p4d.24xlarge", "arm64"), None);
    }
}
