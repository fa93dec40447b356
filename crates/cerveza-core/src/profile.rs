//! Instance and volume profiles: YAML in the paper's tagged form.
//!
//! ```yaml
//! --- !InstanceProfile
//! name: UbuntuGeneric32Bit
//! desc: Ubuntu Generic instance profile without EBS Volumes
//! aws: !InstanceAws
//!   ami: { us-east-1: ami-a6f504cf, ap-southeast-1: ami-7c423c2e }
//!   instance-type: m1.small
//!   key-pair: ops
//!   security-groups: [default]
//! user-data: [cloud-config-puppet.txt]
//! ```
//!
//! A profiles directory holds any number of `*.yaml`/`*.yml` files, each with one or
//! more documents. Every problem is reported with file, line and column, and
//! [`ProfileSet::load_dir`] reports all of them at once rather than the first.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::names::{ProfileName, Region, Zone};
use crate::tags;

/// Largest profile file read, against hostile input.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// A place in a profile file (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    /// The file.
    pub file: PathBuf,
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// A problem with the profiles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// Something wrong at a place in a file.
    #[error("{location}: {message}")]
    At {
        /// Where.
        location: Location,
        /// What.
        message: String,
    },
    /// A file or directory that could not be read.
    #[error("{}: {message}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
    /// A profile name that no file defines.
    #[error("unknown instance profile {name:?}{}", suggest(.suggestions, .known))]
    Unknown {
        /// The name asked for.
        name: String,
        /// Close names, best first.
        suggestions: Vec<String>,
        /// How many profiles are known.
        known: usize,
    },
    /// A profile without an AMI for the region a host is started in.
    #[error("{location}: profile {:?} has no AMI for region {region} (it has: {available}); add `{region}: ami-…` under `ami:`", profile.as_str())]
    NoAmi {
        /// Where the profile's `ami:` is.
        location: Location,
        /// The profile.
        profile: ProfileName,
        /// The region asked for.
        region: Region,
        /// The regions it has AMIs for.
        available: String,
    },
    /// A profile marked `abstract: true` that someone tried to launch.
    #[error("{location}: profile {:?} is abstract (a base for `extends:`) and cannot be launched", profile.as_str())]
    Abstract {
        /// Where the profile is.
        location: Location,
        /// The profile.
        profile: ProfileName,
    },
}

impl ProfileError {
    /// The kind, for exit codes: a profile that does not exist is "not found"; a profile
    /// that is broken or cannot be used here is invalid input.
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            ProfileError::Unknown { .. } => crate::ErrorKind::NotFound,
            _ => crate::ErrorKind::Usage,
        }
    }
}

fn suggest(suggestions: &[String], known: &usize) -> String {
    match suggestions {
        [] if *known == 0 => {
            "; no profiles are defined (check --profiles / CERVEZA_PROFILES)".into()
        }
        [] => "; `cerveza profiles list` shows the known ones".into(),
        [one] => format!("; did you mean {one:?}?"),
        many => format!(
            "; did you mean one of: {}?",
            many.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// One YAML document in a profiles file.
#[derive(Debug, Deserialize)]
enum Document {
    InstanceProfile(RawInstanceProfile),
    VolumeProfile(RawVolumeProfile),
}

/// An instance profile: `--- !InstanceProfile`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawInstanceProfile {
    /// The profile's name, as `--profile` and fleet files give it.
    name: String,
    /// One line of description.
    desc: Option<String>,
    /// An instance profile whose settings this one starts from.
    extends: Option<String>,
    /// A base for `extends:` only, never launched.
    #[serde(rename = "abstract")]
    is_abstract: Option<bool>,
    /// EC2 settings, written `aws: !InstanceAws` followed by the map.
    #[schemars(with = "Option<RawInstanceAws>")]
    aws: Option<AwsSection>,
    /// Files joined into the gzip MIME user-data, relative to the profile file.
    user_data: Option<Vec<RawUserData>>,
    /// Names of volume profiles whose EBS volumes the host gets.
    volume_profiles: Option<Vec<String>>,
    /// Extra tags for the instance and its volumes.
    tags: Option<BTreeMap<String, String>>,
}

/// A `user-data:` entry: a file name, or a map with an explicit content type.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
enum RawUserData {
    File(String),
    Entry(RawUserDataEntry),
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawUserDataEntry {
    file: String,
    #[serde(rename = "type")]
    content_type: Option<String>,
}

impl RawUserData {
    fn file(&self) -> &str {
        match self {
            RawUserData::File(f) => f,
            RawUserData::Entry(e) => &e.file,
        }
    }

    fn content_type(&self) -> Option<&str> {
        match self {
            RawUserData::File(_) => None,
            RawUserData::Entry(e) => e.content_type.as_deref(),
        }
    }
}

/// One user-data file of a profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct UserDataFile {
    /// The file, resolved against the profile file's directory.
    pub path: PathBuf,
    /// An explicit MIME type (`text/x-shellscript`); detected from the first line otherwise.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

/// The MIME types cloud-init handles in a multipart user-data.
pub const USER_DATA_TYPES: &[&str] = &[
    "text/cloud-config",
    "text/cloud-config-archive",
    "text/cloud-config-jsonp",
    "text/cloud-boothook",
    "text/jinja2",
    "text/part-handler",
    "text/upstart-job",
    "text/x-include-once-url",
    "text/x-include-url",
    "text/x-shellscript",
];

/// `aws: !InstanceAws { … }`: the tag is required, as in the paper.
#[derive(Debug, Clone, Deserialize)]
enum AwsSection {
    InstanceAws(RawInstanceAws),
}

/// `aws: !InstanceAws`: what EC2 needs to launch the profile.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawInstanceAws {
    /// AMI per region: `us-east-1: ami-…`, or `resolve:ssm:<parameter>` (a public
    /// parameter such as `/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id`);
    /// `default:` for every region not listed.
    ami: Option<BTreeMap<String, String>>,
    /// EC2 instance type (`t3.small`).
    instance_type: Option<String>,
    /// SSH key pair name.
    key_pair: Option<String>,
    /// Security groups: names (looked up in the host's VPC) or `sg-…` ids.
    security_groups: Option<Vec<String>>,
    /// Launch into a subnet of the host's zone carrying all these tags
    /// (`{tier: private}`); without it, any subnet of the VPC in the zone.
    subnet_tags: Option<BTreeMap<String, String>>,
    /// A subnet per zone (`us-east-1a: subnet-…`), chosen over `subnet-tags`.
    subnets: Option<BTreeMap<String, String>>,
    /// Whether the host gets a public IPv4 address (default: as its subnet says).
    public_ip: Option<bool>,
    /// Give the host an Elastic IP, re-associated at every start.
    eip: Option<bool>,
    /// Instance metadata tokens: `required` (IMDSv2 only, the default) or `optional`
    /// (IMDSv1 allowed too; many organisations refuse such launches).
    imds_tokens: Option<ImdsTokens>,
    /// How many network hops a metadata answer may take (1-64; default 2, so a
    /// container on the host still reaches it).
    imds_hop_limit: Option<u8>,
}

/// Whether an instance's metadata service needs a session token (IMDSv2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ImdsTokens {
    /// IMDSv2 only.
    Required,
    /// IMDSv1 too.
    Optional,
}

/// The metadata options a host launches with when its profile says nothing.
pub const DEFAULT_IMDS_HOP_LIMIT: u8 = 2;

/// A launchable instance profile, with `extends:` resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct InstanceProfile {
    /// Its name (`UbuntuGeneric32Bit`).
    pub name: ProfileName,
    /// One line of description.
    pub desc: String,
    /// The profile it extends, if any.
    pub extends: Option<String>,
    /// A base for others, not launchable.
    #[serde(rename = "abstract")]
    pub is_abstract: bool,
    /// AMI per region: an id, or `resolve:ssm:<parameter>` that EC2 resolves at launch.
    pub ami: BTreeMap<Region, String>,
    /// The AMI of regions `ami:` does not list (its `default:` key), as a public SSM
    /// parameter is the same name in every region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ami_default: Option<String>,
    /// EC2 instance type.
    pub instance_type: String,
    /// SSH key pair name.
    pub key_pair: Option<String>,
    /// Security groups, names or `sg-…` ids (the VPC's default group when empty).
    pub security_groups: Vec<String>,
    /// Tags a host's subnet must carry.
    pub subnet_tags: BTreeMap<String, String>,
    /// A subnet named per zone.
    pub subnets: BTreeMap<Zone, String>,
    /// A public IPv4 address or not (`None`: as the subnet says).
    pub public_ip: Option<bool>,
    /// Give the host an Elastic IP, re-associated at every start.
    pub eip: bool,
    /// Instance metadata tokens (IMDSv2 `required` unless the profile says `optional`).
    pub imds_tokens: ImdsTokens,
    /// Hops a metadata answer may take.
    pub imds_hop_limit: u8,
    /// User-data files, in order.
    pub user_data: Vec<UserDataFile>,
    /// Volume profile names.
    pub volume_profiles: Vec<String>,
    /// Extra tags for the instance and its volumes.
    pub tags: BTreeMap<String, String>,
    /// Where it is defined.
    pub source: Location,
    /// Where its `ami:` map is (for errors about missing regions).
    #[serde(skip)]
    pub ami_location: Location,
}

impl InstanceProfile {
    /// The AMI for `region`, or an error that names the file and the regions it has.
    pub fn ami_for(&self, region: &Region) -> Result<&str, ProfileError> {
        if self.is_abstract {
            return Err(ProfileError::Abstract {
                location: self.source.clone(),
                profile: self.name.clone(),
            });
        }
        self.ami
            .get(region)
            .or(self.ami_default.as_ref())
            .map(String::as_str)
            .ok_or_else(|| ProfileError::NoAmi {
                location: self.ami_location.clone(),
                profile: self.name.clone(),
                region: region.clone(),
                available: self
                    .ami
                    .keys()
                    .map(Region::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// A volume profile: `--- !VolumeProfile`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawVolumeProfile {
    /// The volume profile's name, as instance profiles' `volume-profiles:` give it.
    name: String,
    /// One line of description.
    desc: Option<String>,
    /// The EBS volumes.
    volumes: VolumeSpec,
    /// Device names, one per volume (`/dev/sdf`…).
    devices: Option<Vec<String>>,
    /// 0, 1, 10, `lvm` or `none`.
    raid: Option<RaidRaw>,
    /// Filesystem made on first boot (`xfs`, `ext4`).
    filesystem: Option<String>,
    /// Where it is mounted.
    mount_point: String,
    /// Mount options (`nofail` is always added).
    mount_options: Option<Vec<String>>,
    /// How long the host waits at boot for every volume to appear before it reports the
    /// set missing, in seconds (default 300). A volume attached later starts the
    /// assembly again.
    #[schemars(range(min = 10, max = 3600))]
    device_timeout: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
enum RaidRaw {
    Level(u32),
    Name(String),
}

/// The EBS volumes of a volume profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct VolumeSpec {
    /// How many volumes.
    pub count: u32,
    /// Size of each, GiB.
    pub size_gb: u32,
    /// EBS type (`gp3`, `io2`, …).
    #[serde(rename = "type", default = "default_volume_type")]
    pub volume_type: String,
    /// Provisioned IOPS.
    pub iops: Option<u32>,
    /// Provisioned throughput, MiB/s.
    pub throughput: Option<u32>,
    /// Encrypt at rest.
    #[serde(default)]
    pub encrypted: bool,
    /// The KMS key to encrypt with (key id, `alias/…`, or their ARNs); needs
    /// `encrypted: true`. Without it, the account's default EBS key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key: Option<String>,
}

fn default_volume_type() -> String {
    "gp3".into()
}

/// How a volume profile's volumes are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Raid {
    /// Volumes are used one by one (count must be 1).
    None,
    /// mdadm RAID 0.
    Raid0,
    /// mdadm RAID 1.
    Raid1,
    /// mdadm RAID 10.
    Raid10,
    /// One LVM volume group striped over the volumes.
    Lvm,
}

/// A volume profile: EBS volumes, how they are assembled, where they are mounted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct VolumeProfile {
    /// Its name.
    pub name: String,
    /// One line of description.
    pub desc: String,
    /// The volumes.
    pub volumes: VolumeSpec,
    /// Device names, one per volume.
    pub devices: Vec<String>,
    /// How they are combined.
    pub raid: Raid,
    /// Filesystem made on first boot.
    pub filesystem: String,
    /// Mount point.
    pub mount_point: String,
    /// Mount options (`nofail` is always added).
    pub mount_options: Vec<String>,
    /// Seconds the host waits at boot for every volume before it reports the set missing.
    pub device_timeout: u32,
    /// Where it is defined.
    pub source: Location,
}

/// The default of a volume profile's `device-timeout`, in seconds.
pub const DEFAULT_DEVICE_TIMEOUT: u32 = 300;

/// Where a host keeps each volume profile's settings for its assembler
/// (`<profile>.conf`), written by the host's user-data.
pub const VOLUME_SETTINGS_DIR: &str = "/etc/cerveza/volumes";

/// Where a host's assembler writes each volume profile's status (`<profile>.status`:
/// `state=`, `mount=`, `source=`, `message=`, `time=`), which `doctor` reads.
pub const VOLUME_STATUS_DIR: &str = "/var/lib/cerveza/volumes";

/// The filesystems a volume profile may make.
pub const FILESYSTEMS: &[&str] = &["ext4", "xfs", "ext3", "btrfs"];

/// The slot of an EBS device name: `/dev/sdf` and `/dev/xvdf` are both `f` (EBS and the
/// NVMe controller name a volume by it).
pub fn device_slot(device: &str) -> Option<&str> {
    device
        .strip_prefix("/dev/sd")
        .or_else(|| device.strip_prefix("/dev/xvd"))
        .filter(|s| (1..=2).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase()))
}

/// Every profile of a profiles directory, validated.
#[derive(Debug, Clone, Default)]
pub struct ProfileSet {
    instances: BTreeMap<ProfileName, InstanceProfile>,
    volumes: BTreeMap<String, VolumeProfile>,
}

/// A parsed document with where it came from.
struct Parsed<T> {
    raw: T,
    file: PathBuf,
    /// The whole file's lines, shared by its documents.
    text_lines: std::sync::Arc<Vec<String>>,
    first_line: usize,
    last_line: usize,
}

impl<T> Parsed<T> {
    /// The location of `key:` in this document, and of `value` after it when given.
    fn locate(&self, key: &str, value: Option<&str>) -> Location {
        let mut at = (self.first_line, 1);
        let pat = format!("{key}:");
        let lines = &self.text_lines[self.first_line - 1..self.last_line];
        if let Some((i, col)) = lines
            .iter()
            .enumerate()
            .find_map(|(i, l)| find_key(l, &pat).map(|c| (i, c)))
        {
            at = (self.first_line + i, col + 1);
            if let Some(v) = value {
                if let Some((j, c)) = lines[i..]
                    .iter()
                    .enumerate()
                    .find_map(|(j, l)| l.find(v).map(|c| (j, c)))
                {
                    at = (self.first_line + i + j, c + 1);
                }
            }
        }
        Location {
            file: self.file.clone(),
            line: at.0,
            column: at.1,
        }
    }
}

/// The column of `key:` in a line when it starts a mapping key (after indentation,
/// `- ` or `{`/`,` in flow style).
pub(crate) fn find_key(line: &str, pat: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = line[from..].find(pat) {
        let at = from + i;
        let before = line[..at].trim_end();
        if before.is_empty() || before.ends_with(['-', '{', ',']) {
            return Some(at);
        }
        from = at + pat.len();
    }
    None
}

/// The first line of each document of a YAML stream.
pub(crate) fn document_starts(text: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut seen_content = false;
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("---") {
            starts.push(i + 1);
            seen_content = true;
        } else if !seen_content {
            let t = line.trim();
            if !t.is_empty() && !t.starts_with('#') && !t.starts_with('%') {
                starts.push(1);
                seen_content = true;
            }
        }
    }
    starts
}

/// Turns a yaml_serde error into a located message (its text without "at line …").
pub(crate) fn yaml_error(file: &Path, e: &yaml_serde::Error, fallback_line: usize) -> ProfileError {
    let mut message = e.to_string();
    if let Some(i) = message.rfind(" at line ") {
        message.truncate(i);
    }
    if message.contains("unknown variant") && message.contains("InstanceAws") {
        // serde's "unknown variant" for `aws: !Other` reads poorly.
        message = format!("{message}; write `aws: !InstanceAws` followed by the map");
    } else if message.contains("expected a YAML tag starting with '!'")
        || message.contains("invalid type: map, expected enum")
    {
        message = format!(
            "{message}; a document starts with `--- !InstanceProfile` or `--- !VolumeProfile`, and `aws:` is written `aws: !InstanceAws`"
        );
    }
    let (line, column) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((fallback_line, 1));
    ProfileError::At {
        location: Location {
            file: file.to_owned(),
            line,
            column,
        },
        message,
    }
}

impl ProfileSet {
    /// Loads and validates every `*.yaml`/`*.yml` file of `dir` (not recursive).
    pub fn load_dir(dir: &Path) -> Result<Self, Vec<ProfileError>> {
        let io = |e: std::io::Error| {
            vec![ProfileError::Io {
                path: dir.to_owned(),
                message: e.to_string(),
            }]
        };
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
            })
            .collect();
        paths.sort();
        let mut sources = Vec::new();
        let mut errors = Vec::new();
        for path in paths {
            if let Err(message) = stays_inside(dir, &path) {
                errors.push(ProfileError::Io {
                    path: path.clone(),
                    message,
                });
                continue;
            }
            match read_limited(&path) {
                Ok(text) => sources.push((path, text)),
                Err(e) => errors.push(e),
            }
        }
        match Self::from_sources(&sources) {
            Ok(set) if errors.is_empty() => Ok(set),
            Ok(_) => Err(errors),
            Err(more) => {
                errors.extend(more);
                Err(errors)
            }
        }
    }

    /// Parses and validates profile files given as `(path, text)`. Paths of user-data
    /// files are resolved against each file's directory and must exist.
    pub fn from_sources(sources: &[(PathBuf, String)]) -> Result<Self, Vec<ProfileError>> {
        let mut errors = Vec::new();
        let mut instances: Vec<Parsed<RawInstanceProfile>> = Vec::new();
        let mut volumes: Vec<Parsed<RawVolumeProfile>> = Vec::new();
        for (file, text) in sources {
            let starts = document_starts(text);
            let text_lines: std::sync::Arc<Vec<String>> =
                std::sync::Arc::new(text.lines().map(str::to_owned).collect());
            let total = text_lines.len().max(1);
            for (i, de) in yaml_serde::Deserializer::from_str(text).enumerate() {
                let first_line = starts.get(i).copied().unwrap_or(1);
                let last_line = starts.get(i + 1).map(|n| n - 1).unwrap_or(total);
                match Option::<Document>::deserialize(de) {
                    Ok(None) => {}
                    Ok(Some(Document::InstanceProfile(raw))) => instances.push(Parsed {
                        raw,
                        file: file.clone(),
                        text_lines: text_lines.clone(),
                        first_line,
                        last_line,
                    }),
                    Ok(Some(Document::VolumeProfile(raw))) => volumes.push(Parsed {
                        raw,
                        file: file.clone(),
                        text_lines: text_lines.clone(),
                        first_line,
                        last_line,
                    }),
                    Err(e) => {
                        errors.push(yaml_error(file, &e, first_line));
                        // A syntax error ends the stream; keep what was read before it.
                        break;
                    }
                }
            }
        }

        let mut set = ProfileSet::default();
        let mut seen: BTreeMap<String, Location> = BTreeMap::new();
        for p in &volumes {
            let loc = p.locate("name", Some(&p.raw.name));
            if let Some(first) = seen.insert(p.raw.name.clone(), loc.clone()) {
                errors.push(at(
                    &loc,
                    format!(
                        "profile {:?} is defined twice (first at {first})",
                        p.raw.name
                    ),
                ));
                continue;
            }
            match validate_volume(p) {
                Ok(v) => {
                    set.volumes.insert(v.name.clone(), v);
                }
                Err(e) => errors.extend(e),
            }
        }
        let by_name: BTreeMap<&str, &Parsed<RawInstanceProfile>> =
            instances.iter().map(|p| (p.raw.name.as_str(), p)).collect();
        for p in &instances {
            let loc = p.locate("name", Some(&p.raw.name));
            if let Some(first) = seen.insert(p.raw.name.clone(), loc.clone()) {
                errors.push(at(
                    &loc,
                    format!(
                        "profile {:?} is defined twice (first at {first})",
                        p.raw.name
                    ),
                ));
                continue;
            }
            match resolve_instance(p, &by_name, &set.volumes) {
                Ok(ip) => {
                    set.instances.insert(ip.name.clone(), ip);
                }
                Err(e) => errors.extend(e),
            }
        }
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(errors)
        }
    }

    /// The instance profile called `name`, or an error suggesting close names.
    pub fn instance(&self, name: &str) -> Result<&InstanceProfile, ProfileError> {
        self.instances
            .get(name)
            .ok_or_else(|| ProfileError::Unknown {
                name: name.to_owned(),
                suggestions: close_names(name, self.instances.keys().map(ProfileName::as_str))
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
                known: self.instances.len(),
            })
    }

    /// Every instance profile, by name.
    pub fn instances(&self) -> impl Iterator<Item = &InstanceProfile> {
        self.instances.values()
    }

    /// Every volume profile, by name.
    pub fn volumes(&self) -> impl Iterator<Item = &VolumeProfile> {
        self.volumes.values()
    }

    /// The volume profile called `name`.
    pub fn volume(&self, name: &str) -> Option<&VolumeProfile> {
        self.volumes.get(name)
    }
}

/// The JSON Schema of a profile document (instance or volume profile), for editors (the
/// YAML language server): declare `!InstanceProfile`, `!VolumeProfile` and
/// `!InstanceAws` as custom mapping tags.
pub fn schema() -> serde_json::Value {
    #[derive(schemars::JsonSchema)]
    #[schemars(title = "Cerveza profile (--- !InstanceProfile or --- !VolumeProfile)")]
    #[allow(dead_code)]
    #[serde(untagged)]
    enum ProfileDocument {
        InstanceProfile(RawInstanceProfile),
        VolumeProfile(RawVolumeProfile),
    }
    serde_json::to_value(schemars::schema_for!(ProfileDocument)).unwrap_or_default()
}

/// Up to three known names close to `name` (typos, case), best first.
fn close_names<'k>(name: &str, known: impl Iterator<Item = &'k str>) -> Vec<&'k str> {
    let lower = name.to_lowercase();
    let mut scored: Vec<(usize, &str)> = known
        .map(|k| (strsim::damerau_levenshtein(&k.to_lowercase(), &lower), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .collect();
    scored.sort();
    scored.into_iter().take(3).map(|(_, k)| k).collect()
}

fn read_limited(path: &Path) -> Result<String, ProfileError> {
    let io = |message: String| ProfileError::Io {
        path: path.to_owned(),
        message,
    };
    let len = std::fs::metadata(path)
        .map_err(|e| io(e.to_string()))?
        .len();
    if len > MAX_FILE_BYTES {
        return Err(io(format!(
            "{len} bytes is larger than the {MAX_FILE_BYTES} bytes a profile file may have"
        )));
    }
    std::fs::read_to_string(path).map_err(|e| io(e.to_string()))
}

/// Whether `path`, once every symlink is resolved, is still inside `dir`: profiles
/// directories are shared repositories, and user-data is readable by any process on
/// the instance, so `inside.sh -> /etc/shadow` must not ship a local secret. A path
/// that does not exist (yet) is left to the caller's own check.
fn stays_inside(dir: &Path, path: &Path) -> Result<(), String> {
    let (Ok(real_dir), Ok(real)) = (dir.canonicalize(), path.canonicalize()) else {
        return Ok(());
    };
    if real.starts_with(&real_dir) {
        Ok(())
    } else {
        Err(format!(
            "leads out of the profiles directory through a symlink (to {}); copy the file into {} instead",
            real.display(),
            dir.display()
        ))
    }
}

fn at(location: &Location, message: String) -> ProfileError {
    ProfileError::At {
        location: location.clone(),
        message,
    }
}

fn valid_profile_name(name: &str) -> bool {
    crate::names::ProfileName::parse(name).is_ok()
}

/// A character EC2 accepts in tag keys and values: Unicode letters, digits and spaces,
/// and `_ . : / = + - @`.
fn tag_char(c: char) -> bool {
    c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c)
}

/// How many profiles an `extends:` chain may pass through (every profile resolves its
/// whole chain, so a deep chain costs its depth squared).
pub const MAX_EXTENDS_DEPTH: usize = 16;

/// The chain `p, parent, grandparent, …`, or errors for unknown parents and cycles.
fn ancestry<'a>(
    p: &'a Parsed<RawInstanceProfile>,
    by_name: &BTreeMap<&str, &'a Parsed<RawInstanceProfile>>,
) -> Result<Vec<&'a Parsed<RawInstanceProfile>>, ProfileError> {
    let mut chain = vec![p];
    let mut names = BTreeSet::from([p.raw.name.as_str()]);
    let mut cur = p;
    while let Some(parent) = &cur.raw.extends {
        let loc = cur.locate("extends", Some(parent));
        if chain.len() > MAX_EXTENDS_DEPTH {
            return Err(at(
                &loc,
                format!(
                    "`extends:` goes more than {MAX_EXTENDS_DEPTH} profiles deep from {}; flatten the hierarchy",
                    p.raw.name
                ),
            ));
        }
        let Some(next) = by_name.get(parent.as_str()) else {
            let close = close_names(parent, by_name.keys().copied());
            let hint = if close.is_empty() {
                String::new()
            } else {
                format!("; did you mean {}?", close.join(" or "))
            };
            return Err(at(
                &loc,
                format!("`extends: {parent}` names no instance profile{hint}"),
            ));
        };
        if !names.insert(next.raw.name.as_str()) {
            let cycle: Vec<&str> = chain.iter().map(|c| c.raw.name.as_str()).collect();
            return Err(at(
                &loc,
                format!(
                    "`extends:` forms a cycle: {} -> {parent}",
                    cycle.join(" -> ")
                ),
            ));
        }
        chain.push(next);
        cur = next;
    }
    Ok(chain)
}

fn resolve_instance(
    p: &Parsed<RawInstanceProfile>,
    by_name: &BTreeMap<&str, &Parsed<RawInstanceProfile>>,
    volumes: &BTreeMap<String, VolumeProfile>,
) -> Result<InstanceProfile, Vec<ProfileError>> {
    let chain = ancestry(p, by_name).map_err(|e| vec![e])?;
    let mut errors = Vec::new();
    let name_loc = p.locate("name", Some(&p.raw.name));
    let name = ProfileName::parse(&p.raw.name);
    if name.is_err() {
        errors.push(at(
            &name_loc,
            format!(
                "profile name {:?} must start with a letter and use letters, digits, '-', '_' or '.' (at most 64)",
                p.raw.name
            ),
        ));
    }

    // Merge from the root ancestor down to the profile itself: later wins.
    let mut aws = RawInstanceAws::default();
    // Where each value came from is looked up only for an error: locating is a scan of
    // the document, and doing it for every key would be quadratic in a large file.
    let mut ami: BTreeMap<String, (String, &Parsed<RawInstanceProfile>)> = BTreeMap::new();
    let mut ami_location = name_loc.clone();
    let mut hop_location: Option<Location> = None;
    let mut groups_location: Option<Location> = None;
    let mut subnets_location: Option<Location> = None;
    let mut user_data: Option<(Vec<RawUserData>, &Parsed<RawInstanceProfile>)> = None;
    let mut volume_profiles: Option<(Vec<String>, &Parsed<RawInstanceProfile>)> = None;
    let mut tags_map: BTreeMap<String, (String, &Parsed<RawInstanceProfile>)> = BTreeMap::new();
    let mut desc = None;
    for layer in chain.iter().rev() {
        let raw = &layer.raw;
        if let Some(AwsSection::InstanceAws(a)) = &raw.aws {
            if let Some(m) = &a.ami {
                ami_location = layer.locate("ami", None);
                for (r, id) in m {
                    ami.insert(r.clone(), (id.clone(), layer));
                }
            }
            if a.instance_type.is_some() {
                aws.instance_type.clone_from(&a.instance_type);
            }
            if a.key_pair.is_some() {
                aws.key_pair.clone_from(&a.key_pair);
            }
            if a.security_groups.is_some() {
                aws.security_groups.clone_from(&a.security_groups);
                groups_location = Some(layer.locate("security-groups", None));
            }
            if a.subnet_tags.is_some() {
                aws.subnet_tags.clone_from(&a.subnet_tags);
            }
            if a.subnets.is_some() {
                aws.subnets.clone_from(&a.subnets);
                subnets_location = Some(layer.locate("subnets", None));
            }
            if a.public_ip.is_some() {
                aws.public_ip = a.public_ip;
            }
            if a.eip.is_some() {
                aws.eip = a.eip;
            }
            if a.imds_tokens.is_some() {
                aws.imds_tokens = a.imds_tokens;
            }
            if a.imds_hop_limit.is_some() {
                aws.imds_hop_limit = a.imds_hop_limit;
                hop_location = Some(layer.locate("imds-hop-limit", None));
            }
        }
        if let Some(u) = &raw.user_data {
            user_data = Some((u.clone(), layer));
        }
        if let Some(v) = &raw.volume_profiles {
            volume_profiles = Some((v.clone(), layer));
        }
        for (k, v) in raw.tags.iter().flatten() {
            tags_map.insert(k.clone(), (v.clone(), layer));
        }
        if raw.desc.is_some() {
            desc.clone_from(&raw.desc);
        }
    }
    let is_abstract = p.raw.is_abstract.unwrap_or(false);

    let mut amis = BTreeMap::new();
    let mut ami_default = None;
    let had_ami = !ami.is_empty();
    for (r, (id, layer)) in ami {
        let loc = || layer.locate(&r, Some(&id));
        if let Some(why) = ami_problem(&id) {
            errors.push(at(&loc(), format!("{id:?} is not an AMI id ({why})")));
        }
        if r == "default" {
            ami_default = Some(id);
            continue;
        }
        match Region::parse(&r) {
            Ok(region) => {
                amis.insert(region, id);
            }
            Err(e) => errors.push(at(
                &loc(),
                format!("`{r}` under `ami:` is not a region: {}", e.reason),
            )),
        }
    }
    if !is_abstract {
        if p.raw.aws.is_none() && chain.len() == 1 {
            errors.push(at(
                &name_loc,
                format!(
                    "profile {:?} has no `aws: !InstanceAws` section",
                    p.raw.name
                ),
            ));
        } else {
            if !had_ami {
                errors.push(at(
                    &name_loc,
                    format!(
                        "profile {:?} has no `ami:` map (region: ami-id)",
                        p.raw.name
                    ),
                ));
            }
            if aws.instance_type.is_none() {
                errors.push(at(
                    &name_loc,
                    format!(
                        "profile {:?} has no `instance-type:` under `aws:`",
                        p.raw.name
                    ),
                ));
            }
        }
    }

    let mut files = Vec::new();
    if let Some((list, layer)) = &user_data {
        if list.is_empty() {
            errors.push(at(
                &layer.locate("user-data", None),
                "`user-data: []` names no file; name files, or leave the key out".into(),
            ));
        }
        let base = layer.file.parent().unwrap_or(Path::new("."));
        for entry in list {
            let f = entry.file();
            let path = base.join(f);
            // Files stay under the profiles directory: user-data is readable by
            // anyone who may describe the instance, so `../../etc/shadow` or an
            // absolute path must not pull a local secret into it.
            let inside = Path::new(f).components().all(|c| {
                matches!(
                    c,
                    std::path::Component::Normal(_) | std::path::Component::CurDir
                )
            });
            if !inside {
                errors.push(at(
                    &layer.locate("user-data", Some(f)),
                    format!(
                        "user-data file {f:?} is outside the profiles directory; name files relative to it, without `..`"
                    ),
                ));
            } else if !is_abstract && !path.is_file() {
                errors.push(at(
                    &layer.locate("user-data", Some(f)),
                    format!(
                        "user-data file {f:?} not found (looked for {})",
                        path.display()
                    ),
                ));
            } else if let Err(message) = stays_inside(base, &path) {
                // A symlink (of the file or of a folder on its way) that leads out.
                errors.push(at(
                    &layer.locate("user-data", Some(f)),
                    format!("user-data file {f:?} {message}"),
                ));
            }
            if let Some(t) = entry.content_type() {
                if !USER_DATA_TYPES.contains(&t) {
                    errors.push(at(
                        &layer.locate("user-data", Some(t)),
                        format!(
                            "user-data type {t:?} is not one cloud-init knows: {}",
                            USER_DATA_TYPES.join(", ")
                        ),
                    ));
                }
            }
            files.push(UserDataFile {
                path,
                content_type: entry.content_type().map(str::to_owned),
            });
        }
    }
    if let Some((list, layer)) = &volume_profiles {
        let mut devices: BTreeMap<&str, &str> = BTreeMap::new();
        for v in list {
            for d in volumes
                .get(v)
                .map(|vp| vp.devices.as_slice())
                .unwrap_or_default()
            {
                if let Some(other) = devices.insert(d, v) {
                    errors.push(at(
                        &layer.locate("volume-profiles", Some(v)),
                        format!("volume profiles {other:?} and {v:?} both use device {d}"),
                    ));
                }
            }
            if !volumes.contains_key(v) {
                errors.push(at(
                    &layer.locate("volume-profiles", Some(v)),
                    format!("volume profile {v:?} is not defined (a `--- !VolumeProfile` document with `name: {v}`)"),
                ));
            }
        }
    }
    // EC2 allows 50 tags per resource; a volume carries 7 of cerveza's own.
    const MAX_PROFILE_TAGS: usize = 50 - 7;
    if tags_map.len() > MAX_PROFILE_TAGS {
        errors.push(at(
            &p.locate("tags", None),
            format!(
                "{} tags: EC2 allows 50 per resource and cerveza sets up to 7 of its own, so a profile (with what it extends) may set at most {MAX_PROFILE_TAGS}",
                tags_map.len()
            ),
        ));
    }
    let mut tag_values = BTreeMap::new();
    for (k, (v, layer)) in tags_map {
        let loc = || layer.locate(&k, None);
        if tags::is_reserved(&k) {
            errors.push(at(
                &loc(),
                format!("tag key {k:?} is reserved for cerveza (Name, cerveza:*, aws:*)"),
            ));
        } else if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
            errors.push(at(
                &loc(),
                format!("tag {k:?}: keys have 1 to 128 characters, values at most 256"),
            ));
        } else if let Some(c) = k.chars().chain(v.chars()).find(|c| !tag_char(*c)) {
            errors.push(at(
                &loc(),
                format!(
                    "tag {k:?}: character {c:?} is not allowed in EC2 tags (letters, digits, spaces and _ . : / = + - @)"
                ),
            ));
        }
        tag_values.insert(k, v);
    }
    if let (Some(hops), Some(loc)) = (aws.imds_hop_limit, &hop_location) {
        if !(1..=64).contains(&hops) {
            errors.push(at(loc, format!("imds-hop-limit {hops}: EC2 takes 1 to 64")));
        }
    }
    if let Some(loc) = &groups_location {
        for g in aws.security_groups.iter().flatten() {
            if let Some(why) = crate::network::group_problem(g) {
                errors.push(at(loc, format!("security group {g:?}: {why}")));
            }
        }
    }
    let mut subnets = BTreeMap::new();
    if let Some(loc) = &subnets_location {
        for (zone, id) in aws.subnets.iter().flatten() {
            match Zone::parse(zone) {
                Err(e) => errors.push(at(loc, format!("subnets: {e}"))),
                Ok(_) if !crate::network::is_id(id, "subnet-") => errors.push(at(
                    loc,
                    format!("subnets: {zone}: {id:?} is not a subnet id (subnet- and 8 or 17 hex digits)"),
                )),
                Ok(z) => {
                    subnets.insert(z, id.clone());
                }
            }
        }
    }
    let (Ok(name), true) = (name, errors.is_empty()) else {
        return Err(errors);
    };
    Ok(InstanceProfile {
        name,
        desc: desc.unwrap_or_default(),
        extends: p.raw.extends.clone(),
        is_abstract,
        ami: amis,
        ami_default,
        instance_type: aws.instance_type.unwrap_or_default(),
        key_pair: aws.key_pair,
        security_groups: aws.security_groups.unwrap_or_default(),
        subnet_tags: aws.subnet_tags.unwrap_or_default(),
        subnets,
        public_ip: aws.public_ip,
        eip: aws.eip.unwrap_or(false),
        imds_tokens: aws.imds_tokens.unwrap_or(ImdsTokens::Required),
        imds_hop_limit: aws.imds_hop_limit.unwrap_or(DEFAULT_IMDS_HOP_LIMIT),
        user_data: files,
        volume_profiles: volume_profiles.map(|(v, _)| v).unwrap_or_default(),
        tags: tag_values,
        source: name_loc,
        ami_location,
    })
}

/// What RunInstances would refuse as an image: an AMI id (`ami-` and 8 or 17 hex
/// digits), or `resolve:ssm:<parameter>[:version]`, a Systems Manager parameter EC2
/// resolves at launch (`/aws/service/canonical/ubuntu/…/ami-id`).
pub fn ami_problem(id: &str) -> Option<&'static str> {
    if let Some(name) = id.strip_prefix("resolve:ssm:") {
        let ok = !name.is_empty()
            && name.len() <= 2048
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-/:".contains(&b));
        return (!ok).then_some(
            "a parameter name after resolve:ssm: has letters, digits and _ . - / : only",
        );
    }
    let hex = id.strip_prefix("ami-").unwrap_or("");
    let ok = matches!(hex.len(), 8 | 17) && hex.bytes().all(|b| b.is_ascii_hexdigit());
    (!ok).then_some("ami- and 8 or 17 hex digits, or resolve:ssm:<parameter>")
}

/// What EC2's CreateVolume would refuse in a volume spec, each in words that name the
/// limit: sizes, IOPS and throughput per type and their ratios to size and to each
/// other, and the KMS key (the EC2 API Reference's CreateVolume, and the EBS User
/// Guide's volume types: gp3 3,000-80,000 IOPS at most 500 per GiB, 125-2,000 MiB/s at
/// most 0.25 per IOPS; io1 100-64,000 IOPS at most 50 per GiB; io2 100-256,000 IOPS at
/// most 1,000 per GiB).
pub fn ebs_limits(v: &VolumeSpec) -> Vec<String> {
    let mut p = Vec::new();
    let t = v.volume_type.as_str();
    let size = u64::from(v.size_gb);
    let (min_size, max_size) = match t {
        "gp3" | "io2" => (1, 65_536),
        "io1" => (4, 16_384),
        "st1" | "sc1" => (125, 16_384),
        "standard" => (1, 1024),
        _ => (1, 16_384),
    };
    let min_size = if t == "io2" { 4 } else { min_size };
    if !(min_size..=max_size).contains(&size) {
        p.push(format!(
            "`size-gb: {size}`: {t} volumes have {min_size} to {max_size} GiB"
        ));
    }
    let iops = v.iops.map(u64::from);
    match (t, iops) {
        ("gp3" | "io1" | "io2", Some(i)) => {
            let (lo, hi, per_gib) = match t {
                "gp3" => (3_000, 80_000, 500),
                "io1" => (100, 64_000, 50),
                _ => (100, 256_000, 1_000),
            };
            if !(lo..=hi).contains(&i) {
                p.push(format!("`iops: {i}`: {t} volumes have {lo} to {hi} IOPS"));
            } else if i > per_gib * size && i > lo {
                p.push(format!(
                    "`iops: {i}` on {size} GiB: {t} allows at most {per_gib} IOPS per GiB ({} here); raise size-gb to {} or lower iops",
                    per_gib * size,
                    i.div_ceil(per_gib)
                ));
            }
        }
        ("io1" | "io2", None) => {
            p.push(format!("{t} volumes need `iops:` (their provisioned IOPS)"))
        }
        ("gp3", None) => {}
        (_, Some(i)) => p.push(format!(
            "`iops: {i}`: only gp3, io1 and io2 volumes take provisioned IOPS, not {t}"
        )),
        (_, None) => {}
    }
    match (t, v.throughput.map(u64::from)) {
        ("gp3", Some(tp)) => {
            let i = iops.unwrap_or(3_000);
            if !(125..=2_000).contains(&tp) {
                p.push(format!(
                    "`throughput: {tp}`: gp3 volumes have 125 to 2000 MiB/s"
                ));
            } else if tp * 4 > i && tp > 125 {
                p.push(format!(
                    "`throughput: {tp}` with {i} IOPS: gp3 allows at most 0.25 MiB/s per IOPS ({} MiB/s here); raise iops to {} or lower throughput",
                    i / 4,
                    tp * 4
                ));
            }
        }
        (_, Some(tp)) => p.push(format!(
            "`throughput: {tp}`: only gp3 volumes take a throughput, not {t}"
        )),
        (_, None) => {}
    }
    if let Some(k) = &v.kms_key {
        if !v.encrypted {
            p.push(format!(
                "`kms-key: {k}` needs `encrypted: true` (EC2 refuses a KMS key for an unencrypted volume)"
            ));
        }
        if !valid_kms_key(k) {
            p.push(format!(
                "`kms-key: {k:?}` is not a KMS key id, `alias/NAME`, or the ARN of either"
            ));
        }
    }
    p
}

/// A KMS key as CreateVolume takes it: a key id (UUID, or `mrk-` and 32 hex digits),
/// `alias/NAME`, or `arn:PARTITION:kms:REGION:ACCOUNT:key/ID` or `…:alias/NAME`.
fn valid_kms_key(k: &str) -> bool {
    let key_id = |s: &str| {
        let uuid = s.len() == 36
            && s.char_indices().all(|(i, c)| {
                if [8, 13, 18, 23].contains(&i) {
                    c == '-'
                } else {
                    c.is_ascii_hexdigit()
                }
            });
        let mrk = s
            .strip_prefix("mrk-")
            .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        uuid || mrk
    };
    let alias = |s: &str| {
        s.strip_prefix("alias/").is_some_and(|n| {
            !n.is_empty()
                && n.len() <= 250
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b))
        })
    };
    if let Some(rest) = k.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        return match parts[..] {
            [partition, "kms", region, account, resource] => {
                partition.starts_with("aws")
                    && !region.is_empty()
                    && account.len() == 12
                    && account.bytes().all(|b| b.is_ascii_digit())
                    && (resource.strip_prefix("key/").is_some_and(key_id) || alias(resource))
            }
            _ => false,
        };
    }
    key_id(k) || alias(k)
}

fn validate_volume(p: &Parsed<RawVolumeProfile>) -> Result<VolumeProfile, Vec<ProfileError>> {
    let raw = &p.raw;
    let mut errors = Vec::new();
    let name_loc = p.locate("name", Some(&raw.name));
    if !valid_profile_name(&raw.name) {
        errors.push(at(&name_loc, format!("profile name {:?} must start with a letter and use letters, digits, '-', '_' or '.'", raw.name)));
    }
    let count = raw.volumes.count;
    let vol_loc = p.locate("volumes", None);
    if !(1..=16).contains(&count) {
        errors.push(at(
            &vol_loc,
            format!("`count: {count}`: a volume profile has 1 to 16 volumes"),
        ));
    }
    const TYPES: &[&str] = &["gp2", "gp3", "io1", "io2", "st1", "sc1", "standard"];
    if TYPES.contains(&raw.volumes.volume_type.as_str()) {
        for problem in ebs_limits(&raw.volumes) {
            errors.push(at(&vol_loc, problem));
        }
    } else {
        errors.push(at(
            &p.locate("type", None),
            format!(
                "volume type {:?} is not one of {}",
                raw.volumes.volume_type,
                TYPES.join(", ")
            ),
        ));
    }
    let raid = match &raw.raid {
        None => Raid::None,
        Some(RaidRaw::Level(0)) => Raid::Raid0,
        Some(RaidRaw::Level(1)) => Raid::Raid1,
        Some(RaidRaw::Level(10)) => Raid::Raid10,
        Some(RaidRaw::Name(n)) if n == "none" => Raid::None,
        Some(RaidRaw::Name(n)) if n == "lvm" => Raid::Lvm,
        Some(other) => {
            let shown = match other {
                RaidRaw::Level(n) => n.to_string(),
                RaidRaw::Name(s) => s.clone(),
            };
            errors.push(at(
                &p.locate("raid", None),
                format!("`raid: {shown}` is not one of none, 0, 1, 10, lvm"),
            ));
            Raid::None
        }
    };
    let min = match raid {
        Raid::Raid1 | Raid::Raid0 => 2,
        Raid::Raid10 => 4,
        Raid::None | Raid::Lvm => 1,
    };
    if count < min || (raid == Raid::Raid10 && count % 2 != 0) || (raid == Raid::None && count != 1)
    {
        errors.push(at(&vol_loc, format!("{count} volume(s) do not fit raid {raid:?} (none: 1, 0/1: 2 or more, 10: an even number of 4 or more)")));
    }
    let devices = match &raw.devices {
        Some(d) => {
            if d.len() != count as usize {
                errors.push(at(
                    &p.locate("devices", None),
                    format!("{} device names for {count} volumes", d.len()),
                ));
            }
            let mut slots = BTreeMap::new();
            for dev in d {
                match device_slot(dev) {
                    None => errors.push(at(
                        &p.locate("devices", Some(dev)),
                        format!("{dev:?} is not an EBS device name like /dev/sdf"),
                    )),
                    Some("a") => errors.push(at(
                        &p.locate("devices", Some(dev)),
                        format!(
                            "{dev:?} is the root volume's slot; data volumes start at /dev/sdf"
                        ),
                    )),
                    Some(slot) => {
                        if let Some(first) = slots.insert(slot, dev) {
                            errors.push(at(
                                &p.locate("devices", Some(dev)),
                                format!("{dev:?} and {first:?} are the same EBS slot ({slot}): a Nitro instance cannot tell them apart"),
                            ));
                        }
                    }
                }
            }
            d.clone()
        }
        None => (0..count.min(16))
            .map(|i| format!("/dev/sd{}", (b'f' + i as u8) as char))
            .collect(),
    };
    // These values reach the boot script and /proc/mounts: plain path characters only.
    let path_safe = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_.-".contains(&b))
    };
    if !raw.mount_point.starts_with('/') || raw.mount_point == "/" || !path_safe(&raw.mount_point) {
        errors.push(at(
            &p.locate("mount-point", None),
            format!(
                "mount point {:?} must be an absolute path other than / made of letters, digits, '/', '_', '.' and '-'",
                raw.mount_point
            ),
        ));
    }
    if let Some(fs) = &raw.filesystem {
        if !FILESYSTEMS.contains(&fs.as_str()) {
            errors.push(at(
                &p.locate("filesystem", None),
                format!("filesystem {fs:?} is not one of {}", FILESYSTEMS.join(", ")),
            ));
        }
    }
    for o in raw.mount_options.iter().flatten() {
        let ok = !o.is_empty()
            && o.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"=_.-:/".contains(&b));
        if !ok {
            errors.push(at(
                &p.locate("mount-options", Some(o)),
                format!("mount option {o:?} may hold letters, digits and = _ . - : / only (one option per list item)"),
            ));
        }
    }
    if raw
        .device_timeout
        .is_some_and(|t| !(10..=3600).contains(&t))
    {
        errors.push(at(
            &p.locate("device-timeout", None),
            format!(
                "`device-timeout: {}`: the boot wait for volumes is 10 to 3600 seconds",
                raw.device_timeout.unwrap_or_default()
            ),
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(VolumeProfile {
        name: raw.name.clone(),
        desc: raw.desc.clone().unwrap_or_default(),
        volumes: raw.volumes.clone(),
        devices,
        raid,
        filesystem: raw.filesystem.clone().unwrap_or_else(|| "ext4".into()),
        mount_point: raw.mount_point.clone(),
        mount_options: raw.mount_options.clone().unwrap_or_default(),
        device_timeout: raw.device_timeout.unwrap_or(DEFAULT_DEVICE_TIMEOUT),
        source: name_loc,
    })
}
