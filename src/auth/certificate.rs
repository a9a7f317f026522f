//! Principals from client certificates (mutual TLS on a listener that does not ask for SASL).
//! rustls has already checked the certificate against the listener's authority; this only
//! reads its subject, in the two forms users name it by: the whole distinguished name as
//! Kafka writes it (RFC 2253: most specific first, `CN=alice,OU=payments,O=example`), or its
//! common name alone (`alice`, the same name a SASL user of that name has).

use x509_parser::objects::{oid_registry, oid2abbrev};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::AttributeTypeAndValue;

/// Characters RFC 2253 escapes with a backslash inside an attribute value.
const SPECIAL: &[char] = &[',', '+', '"', '\\', '<', '>', ';'];

/// The subject of a DER certificate as RFC 2253 writes it; None when it does not parse or
/// has an empty subject.
pub fn subject_dn(der: &[u8]) -> Option<String> {
    let (_, certificate) = X509Certificate::from_der(der).ok()?;
    // DER lists the least specific RDN first; RFC 2253 (and Kafka) print the reverse.
    let rdns: Vec<String> = certificate
        .subject()
        .iter_rdn()
        .map(|rdn| rdn.iter().map(attribute).collect::<Vec<_>>().join("+"))
        .collect();
    let dn: Vec<String> = rdns.into_iter().rev().collect();
    let dn = dn.join(",");
    (!dn.is_empty()).then_some(dn)
}

/// The subject's (most specific) common name; None when there is none.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, certificate) = X509Certificate::from_der(der).ok()?;
    let names: Vec<&AttributeTypeAndValue<'_>> = certificate.subject().iter_common_name().collect();
    let name = names.last()?.as_str().ok()?;
    (!name.is_empty()).then(|| name.to_string())
}

/// `TYPE=value`: the type by its short name (CN, O, ...) or dotted OID, the value escaped; a
/// value that is not a string is written `#hex` as RFC 2253 says.
fn attribute(attribute: &AttributeTypeAndValue<'_>) -> String {
    let oid = attribute.attr_type();
    let name = oid2abbrev(oid, oid_registry())
        .map(str::to_string)
        .unwrap_or_else(|_| oid.to_id_string());
    let value = match attribute.as_str() {
        Ok(text) => escape(text),
        Err(_) => {
            let hex: String = attribute
                .as_slice()
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect();
            format!("#{hex}")
        }
    };
    format!("{name}={value}")
}

fn escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (index, c) in value.chars().enumerate() {
        let leading = index == 0 && (c == ' ' || c == '#');
        let trailing = index == last && c == ' ';
        if SPECIAL.contains(&c) || leading || trailing {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};

    fn certificate(subject: &[(DnType, &str)]) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (kind, value) in subject {
            params.distinguished_name.push(kind.clone(), *value);
        }
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn the_subject_reads_most_specific_first_with_rfc_2253_escapes() {
        let der = certificate(&[
            (DnType::OrganizationName, "Example, Inc."),
            (DnType::OrganizationalUnitName, "payments"),
            (DnType::CommonName, "alice"),
        ]);
        assert_eq!(
            subject_dn(&der).as_deref(),
            Some("CN=alice,OU=payments,O=Example\\, Inc.")
        );
        assert_eq!(common_name(&der).as_deref(), Some("alice"));
    }

    #[test]
    fn no_subject_or_no_certificate_names_nobody() {
        let der = certificate(&[]);
        assert_eq!(subject_dn(&der), None);
        assert_eq!(common_name(&der), None);
        assert_eq!(subject_dn(b"not a certificate"), None);
        assert_eq!(common_name(&[0x30, 0x82, 0xff, 0xff]), None);
        let only_org = certificate(&[(DnType::OrganizationName, "example")]);
        assert_eq!(subject_dn(&only_org).as_deref(), Some("O=example"));
        assert_eq!(common_name(&only_org), None);
    }

    #[test]
    fn values_are_escaped_where_rfc_2253_says() {
        assert_eq!(escape("a+b=c;d"), "a\\+b=c\\;d");
        assert_eq!(escape(" lead"), "\\ lead");
        assert_eq!(escape("#hash"), "\\#hash");
        assert_eq!(escape("trail "), "trail\\ ");
        assert_eq!(escape("plain"), "plain");
    }
}
