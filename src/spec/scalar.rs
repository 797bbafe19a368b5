//! Constrained string types of the spec.
//!
//! Every string that can reach a rendered file is one of these types. Each
//! carries a JSON-schema pattern and length limit, so that the schema stage
//! rejects any value that could smuggle a newline, a quote, a comment or a
//! directive into a config file before anything is rendered.
//!
//! The consumers and what each would take as syntax (so what no type admits
//! where that consumer reads it): the kickstart (`#` comment, `%` section,
//! a leading `-` in `%packages` excludes a package), `%post` and every shell
//! script (`$`, `;`, `&`, `|`, quotes, backticks, globs), `grub.cfg` (the
//! metacharacters `{ } | & $ ; < >` and space, see the GRUB manual, "Shell-like
//! scripting"), PXELINUX (space ends an argument), YAML read by PyYAML
//! (quotes, and the line breaks NEL U+0085, U+2028 and U+2029, which PyYAML's
//! reader counts as breaks: `yaml/reader.py`, `NON_PRINTABLE` and the scanner's
//! `\x85\u2028\u2029`), environment files (whitespace, quotes, `$`),
//! pgbackrest.conf and haproxy.cfg (`#` comments, whitespace), systemd units
//! (`%` specifiers), cron (`%` is a newline, a sixth field is a command), and
//! command-line options (a leading `-`).

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

macro_rules! constrained_string {
    ($(#[$doc:meta])* $name:ident, $pattern:expr, $max:expr, $desc:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// The JSON-schema pattern every value of this type matches.
            pub const PATTERN: &'static str = $pattern;

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "type": "string",
                    "description": $desc,
                    "pattern": $pattern,
                    "minLength": 1,
                    "maxLength": $max,
                })
            }
        }
    };
}

constrained_string!(
    /// A cluster, site or scope name.
    Name,
    "^[a-z][a-z0-9_-]*$",
    63,
    "a lowercase name: a letter, then letters, digits, `_` or `-` (at most 63 characters)"
);

constrained_string!(
    /// A host name; RFC 1123 rules are checked semantically (PG0104).
    HostName,
    "^[A-Za-z0-9][A-Za-z0-9-]*(\\.[A-Za-z0-9][A-Za-z0-9-]*)*$",
    253,
    "an RFC 1123 host name: labels of letters, digits and `-`, separated by single `.`"
);

constrained_string!(
    /// An IPv4 or IPv6 address; parsed semantically (PG0103).
    Address,
    "^[0-9A-Fa-f:.]+$",
    45,
    "an IPv4 or IPv6 address, without prefix length"
);

constrained_string!(
    /// An address with prefix length, for pg_hba rows.
    Cidr,
    "^[0-9A-Fa-f:.]+/[0-9]{1,3}$",
    49,
    "an address with prefix length, such as `10.0.0.0/8` or `::1/128`"
);

constrained_string!(
    /// An absolute path below `/` without spaces, quotes or shell metacharacters.
    /// Every component starts with a letter, digit, `_`, `+` or `-`, so `/`,
    /// `//data`, `/.`, `/data/..` and hidden components are refused: a data
    /// directory is chowned and chmodded as root by `%post`.
    AbsPath,
    "^(/[A-Za-z0-9_+-][A-Za-z0-9._+-]*)+/?$",
    255,
    "an absolute path below `/`: components of letters, digits and `._+-`, each starting with a letter, digit, `_`, `+` or `-`, separated by single `/`"
);

constrained_string!(
    /// A path to a file, relative to the spec's directory or absolute.
    FilePath,
    "^[A-Za-z0-9._+/-]+$",
    255,
    "a file path of letters, digits and `._+-/`, relative to the spec's directory or absolute"
);

constrained_string!(
    /// A PostgreSQL identifier; the exact rule is checked semantically (PG0160).
    Ident,
    "^[A-Za-z0-9_$-]+$",
    128,
    "letters, digits, `_`, `$` and `-`; where pgimg writes it unquoted (roles, slots, stanzas) it must be a lowercase identifier (PG0160)"
);

constrained_string!(
    /// The name of a PostgreSQL run-time parameter (GUC).
    ParamName,
    "^[a-z_][a-z0-9_]*(\\.[a-z_][a-z0-9_]*)?$",
    63,
    "a PostgreSQL parameter name such as `shared_buffers` or `auto_explain.log_min_duration`"
);

constrained_string!(
    /// A free-form single-line value: no control character, quote or backslash.
    Text,
    "^[^\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029\\ufeff'\"\\\\]*$",
    1024,
    "a single line of text without quotes, backslashes, control characters or line separators"
);

constrained_string!(
    /// The name of an environment variable.
    EnvName,
    "^[A-Z_][A-Z0-9_]*$",
    128,
    "an environment variable name: uppercase letters, digits and `_`"
);

constrained_string!(
    /// A package or component version.
    Version,
    "^[0-9][0-9A-Za-z.~+_-]*$",
    64,
    "a version such as `4.1.5` or `17.6-1PGDG.rhel9`"
);

constrained_string!(
    /// A URL for repositories and boot servers. It is written unquoted into
    /// the kickstart (where `#` starts a comment), `grub.cfg` (where `;`, `&`,
    /// `|`, `$`, braces and angle brackets are syntax), PXELINUX, `.repo` files
    /// and shell commands, so only the characters none of them reads as
    /// syntax are allowed, and `%` only as a percent-encoded byte.
    Url,
    "^(https?|ftp|nfs|file)://([A-Za-z0-9._~:/?@+,=-]|%[0-9A-Fa-f]{2})+$",
    1000,
    "an http(s), ftp, nfs or file URL of letters, digits, `._~:/?@+,=-` and `%XX` escapes (no `;`, `#`, `$`, `&`, quotes or spaces)"
);

constrained_string!(
    /// An etcd cluster token, a package name and similar opaque words. The
    /// first character is a letter or digit: a leading `-` would exclude a
    /// package in `%packages` and be an option to `dnf install`.
    Token,
    "^[A-Za-z0-9][A-Za-z0-9_.-]*$",
    128,
    "a word of letters, digits, `_`, `.` and `-`, starting with a letter or digit"
);

constrained_string!(
    /// A network interface name. No `:`, which separates the fields of
    /// dracut's `ip=` argument where the name is written.
    Interface,
    "^[A-Za-z0-9][A-Za-z0-9_.-]*$",
    15,
    "a network interface name such as `eth0` or `ens192`"
);

constrained_string!(
    /// A MAC address.
    Mac,
    "^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$",
    17,
    "a MAC address such as `52:54:00:12:34:56`"
);

constrained_string!(
    /// A block device: a kernel name or a stable `/dev/disk/by-id|by-path` name, which
    /// anaconda accepts wherever a disk is named ("you can use any item from /dev/disk",
    /// RHEL 9 "Kickstart commands for handling storage").
    Disk,
    "^[a-z][a-z0-9]*$|^(/dev/)?disk/by-(id|path)/[A-Za-z0-9_.:+-]+$",
    255,
    "a block device name without `/dev/` such as `sda` or `nvme1n1`, or a stable name such as `/dev/disk/by-id/wwn-0x5000c500a1b2c3d4` or `disk/by-path/pci-0000:00:05.0-scsi-0:0:0:0`"
);

constrained_string!(
    /// Mount options.
    MountOptions,
    "^[A-Za-z0-9_.=:-]+(,[A-Za-z0-9_.=:-]+)*$",
    500,
    "comma-separated mount options such as `vers=4.2,hard,noatime`"
);

constrained_string!(
    /// An OpenSSH public key line.
    SshKey,
    "^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|sk-ssh-ed25519@openssh.com|sk-ecdsa-sha2-nistp256@openssh.com) [A-Za-z0-9+/]+={0,3}( [A-Za-z0-9@._+-]+)?$",
    8192,
    "an OpenSSH public key: type, base64 key and an optional comment without spaces"
);

constrained_string!(
    /// A time zone name from the tz database.
    TimeZone,
    "^[A-Za-z_]+(/[A-Za-z0-9_+-]+){0,2}$",
    64,
    "a tz database name such as `UTC` or `Europe/Berlin`"
);

constrained_string!(
    /// A locale name.
    Locale,
    "^[A-Za-z]+(_[A-Za-z]+)?(\\.[A-Za-z0-9-]+)?(@[A-Za-z]+)?$|^C$|^POSIX$",
    64,
    "a locale such as `en_US.UTF-8` or `C`"
);

constrained_string!(
    /// A five-field cron schedule.
    Cron,
    "^[0-9*/,-]+( [0-9*/,-]+){4}$",
    100,
    "a five-field cron schedule such as `0 1 * * 0`"
);

constrained_string!(
    /// An S3 bucket name.
    Bucket,
    "^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$",
    63,
    "an S3 bucket name: lowercase labels of letters, digits and `-`, separated by single `.`"
);

constrained_string!(
    /// A host name with an optional port, such as an S3 endpoint.
    Endpoint,
    "^[A-Za-z0-9][A-Za-z0-9-]*(\\.[A-Za-z0-9][A-Za-z0-9-]*)*(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?$",
    260,
    "a host name with optional `:port`, such as `s3.eu-west-1.amazonaws.com`"
);

constrained_string!(
    /// An http(s) URL of a service endpoint: no query, fragment, credentials or shell metacharacter.
    EndpointUrl,
    "^https?://[A-Za-z0-9._~:/-]+$",
    1000,
    "an http(s) URL of letters, digits and `._~:/-`, such as `https://secrets.example.com/pgimg`"
);

constrained_string!(
    /// A cloud region name.
    Region,
    "^[a-z0-9]+(-[a-z0-9]+)*$",
    32,
    "a region name such as `eu-west-1`"
);

constrained_string!(
    /// A kernel parameter name for sysctl.
    SysctlName,
    "^[a-z0-9_]+(\\.[a-z0-9_-]+)+$",
    128,
    "a sysctl key such as `vm.swappiness`"
);

constrained_string!(
    /// A keyboard layout.
    Keyboard,
    "^[A-Za-z0-9_-]+$",
    32,
    "a keyboard layout such as `us`"
);

constrained_string!(
    /// A Linux user name, written unquoted into the kickstart's `user` and
    /// `%post` (a root shell script) and into a sudoers file name. The
    /// pattern is shadow-utils' default for `useradd` without its trailing
    /// `$`, and 32 characters is its length limit (`man 8 useradd`, CAVEATS).
    UserName,
    "^[a-z_][a-z0-9_-]*$",
    32,
    "a user name: lowercase letters, digits, `_` and `-`, starting with a letter or `_` (at most 32 characters)"
);
