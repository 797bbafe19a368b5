//! The cluster CA and the host certificates of `secrets.tls`, made with
//! rcgen (ECDSA P-256 keys, PKCS#8 PEM). Used by `pgimg secrets init` and by
//! `pgimg lab` (for its loopback addresses), never by a build: certificates
//! are secrets, so their randomness (rcgen draws keys from the operating
//! system's generator through ring) and their dates never reach a reviewable
//! artifact.
//!
//! A host certificate carries both TLS purposes: etcd peers present theirs as
//! server and as client (etcd's `--peer-client-cert-auth`), and Patroni
//! presents the same one to etcd as a client.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::Error;

/// A certificate and its private key, both PEM.
pub struct Pem {
    pub cert: String,
    pub key: String,
}

/// A calendar day, the first day of a certificate's validity.
#[derive(Debug, Clone, Copy)]
pub struct Day {
    pub year: i32,
    pub month: u8,
    pub day: u8,
}

impl Day {
    /// The day of a Unix time (UTC), by the civil-from-days algorithm of
    /// Howard Hinnant's "chrono-Compatible Low-Level Date Algorithms".
    pub fn from_unix(secs: u64) -> Day {
        let z = (secs / 86_400) as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        Day { year, month, day }
    }
}

/// Years a CA certificate is valid.
pub const CA_YEARS: i32 = 10;
/// Years a host certificate is valid.
pub const HOST_YEARS: i32 = 5;

fn err(what: &str, e: rcgen::Error) -> Error {
    Error::Input(format!("{what}: {e}"))
}

/// The first and last day of a validity of `years` from `from` (the day
/// before, against clocks a little behind; the 28th, so that every month has it).
fn validity(params: &mut CertificateParams, from: Day, years: i32) {
    let day = from.day.min(28);
    params.not_before = rcgen::date_time_ymd(from.year, from.month, day.max(2) - 1);
    params.not_after = rcgen::date_time_ymd(from.year + years, from.month, day);
}

/// The CA's subject: `secrets init` signs host certificates with the CA key
/// and this name, so a CA it made itself is the only one it can sign for.
fn ca_params(cluster: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "pgimg");
    dn.push(DnType::CommonName, format!("pgimg CA of cluster {cluster}"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// A new CA for a cluster.
pub fn new_ca(cluster: &str, today: Day) -> Result<Pem, Error> {
    let key = KeyPair::generate().map_err(|e| err("generating the CA key", e))?;
    let mut params = ca_params(cluster);
    validity(&mut params, today, CA_YEARS);
    let cert = params
        .self_signed(&key)
        .map_err(|e| err("signing the CA certificate", e))?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// What a host certificate names (`plan::secrets::tls_names`).
pub use crate::plan::secrets::TlsNames as HostNames;

/// A new key and certificate for a host, signed by the cluster's CA key.
pub fn host_cert(
    cluster: &str,
    ca_key_pem: &str,
    host: &HostNames,
    today: Day,
) -> Result<Pem, Error> {
    let ca_key = KeyPair::from_pem(ca_key_pem)
        .map_err(|e| err(&format!("reading the CA key of cluster {cluster}"), e))?;
    let issuer = Issuer::new(ca_params(cluster), ca_key);
    let key = KeyPair::generate().map_err(|e| err("generating a host key", e))?;
    let mut params = CertificateParams::default();
    // No CommonName: the names live in the SANs only. With client-cert-auth,
    // authentication and the JSON gateway all on, etcd answers HTTP 400 "CommonName
    // of client sending a request against gateway will be ignored" to any client
    // certificate that carries one (the guard in etcd's `embed/serve.go`, added by
    // etcd-io/etcd#10366 for CVE-2018-16886), and Patroni's etcd3 client talks to
    // the gateway. libpq's verify-full, Go and HAProxy check the SANs.
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "pgimg");
    params.distinguished_name = dn;
    let mut names: Vec<String> = vec![host.fqdn.clone()];
    if host.name != host.fqdn {
        names.push(host.name.clone());
    }
    for n in names {
        let dns = n
            .clone()
            .try_into()
            .map_err(|e| err(&format!("host name `{n}`"), e))?;
        params.subject_alt_names.push(SanType::DnsName(dns));
    }
    for a in &host.addresses {
        let ip: IpAddr = a
            .parse()
            .map_err(|_| Error::Input(format!("`{a}` is not an IP address")))?;
        let san = SanType::IpAddress(ip);
        if !params.subject_alt_names.contains(&san) {
            params.subject_alt_names.push(san);
        }
    }
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    validity(&mut params, today, HOST_YEARS);
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|e| err(&format!("signing the certificate of {}", host.name), e))?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_from_unix_time() {
        let d = Day::from_unix(0);
        assert_eq!((d.year, d.month, d.day), (1970, 1, 1));
        let d = Day::from_unix(1_709_164_800); // 2024-02-29
        assert_eq!((d.year, d.month, d.day), (2024, 2, 29));
    }

    /// A CA and the certificate it signs for host pg1.
    fn ca_and_pg1() -> (Pem, Pem) {
        let today = Day::from_unix(1_800_000_000);
        let ca = new_ca("c", today).unwrap();
        let host = HostNames {
            name: "pg1".into(),
            fqdn: "pg1.example.com".into(),
            addresses: vec!["10.0.0.1".into()],
        };
        let h = host_cert("c", &ca.key, &host, today).unwrap();
        (ca, h)
    }

    #[test]
    fn a_host_certificate_is_signed_by_its_ca() {
        let (_, h) = ca_and_pg1();
        assert!(h.cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(h.key.starts_with("-----BEGIN PRIVATE KEY-----"));
    }

    /// DER of the attribute type id-at-commonName (2.5.4.3).
    const COMMON_NAME_OID: [u8; 5] = [0x06, 0x03, 0x55, 0x04, 0x03];

    fn der(pem: &str) -> Vec<u8> {
        use base64::Engine as _;
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap()
    }

    #[test]
    fn a_host_certificate_has_no_common_name_for_etcds_gateway() {
        let (ca, h) = ca_and_pg1();
        let contains = |hay: &[u8]| hay.windows(5).any(|w| w == COMMON_NAME_OID);
        // The probe finds the CA's own CommonName, so it can fail.
        assert!(contains(&der(&ca.cert)));
        let cert = der(&h.cert);
        // The issuer name (the CA's) carries one CommonName; the subject none.
        assert_eq!(
            cert.windows(5).filter(|w| *w == COMMON_NAME_OID).count(),
            1,
            "the host certificate's subject names a CommonName"
        );
    }
}
