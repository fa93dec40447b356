//! The tag vocabulary: what cerveza writes on every instance and volume it creates.
//!
//! Tags are the source of truth for what exists (the paper: "for the rest we leverage
//! the Tagging feature"); the registry only remembers profile and zone of each host.
//! A resource is cerveza's only when it carries both [`PRODUCT`] and [`HOST`].

/// The console name: the hostname, so the AWS console shows `demo01`, not `i-0abc…`.
pub const NAME: &str = "Name";
/// The product (fleet namespace) the resource belongs to.
pub const PRODUCT: &str = "cerveza:product";
/// The hostname the resource belongs to.
pub const HOST: &str = "cerveza:host";
/// The instance profile the host was launched with.
pub const PROFILE: &str = "cerveza:profile";
/// The availability zone the host lives in.
pub const ZONE: &str = "cerveza:zone";
/// The idempotency token of the launch that created the instance (see [`crate::token`]).
pub const TOKEN: &str = "cerveza:token";
/// The claim of the hostname the resource was made under (see [`crate::token`]).
pub const CLAIM: &str = "cerveza:claim";
/// The device name an EBS volume is attached at (`/dev/sdf`).
pub const DEVICE: &str = "cerveza:device";

/// The volume profile an EBS volume belongs to.
pub const VOLUME_PROFILE: &str = "cerveza:volume-profile";
/// The volume's index in its RAID set or volume group (0, 1, …).
pub const MEMBER: &str = "cerveza:member";
/// On a volume made by a restore: the backup set it was made from (kept for good).
pub const RESTORED_FROM: &str = "cerveza:restored-from";
/// On a volume made by a restore that is not finished: the device it will take. Until
/// the restore ends it has no [`DEVICE`], so no start attaches it (nor a half set).
pub const RESTORE_DEVICE: &str = "cerveza:restore-device";
/// On a volume a restore replaced: the device it had (it has no [`DEVICE`] any more,
/// so no start attaches it again; it is kept until deleted by hand).
pub const REPLACED_DEVICE: &str = "cerveza:replaced-device";
/// On a volume a restore replaced: the set that replaced it.
pub const REPLACED_BY: &str = "cerveza:replaced-by";
/// Marks an Elastic IP as the host's.
pub const EIP: &str = "cerveza:eip";

/// Every key cerveza owns; profiles may not set these themselves.
pub const RESERVED: &[&str] = &[
    NAME,
    PRODUCT,
    HOST,
    PROFILE,
    ZONE,
    TOKEN,
    CLAIM,
    DEVICE,
    VOLUME_PROFILE,
    MEMBER,
    RESTORED_FROM,
    RESTORE_DEVICE,
    REPLACED_DEVICE,
    REPLACED_BY,
    EIP,
];

/// Whether `key` is cerveza's own (reserved keys and the whole `cerveza:` prefix).
pub fn is_reserved(key: &str) -> bool {
    RESERVED.contains(&key) || key.starts_with("cerveza:") || key.starts_with("aws:")
}
