//! SMART (§3.6) and the health summary derived from it, shaped like ndctl's health object.

use crate::admin::Admin;
use crate::error::{AdminError, ProtocolError};
use crate::table;
use ocxlpmem_regs::payload::smart::{self as sm, Attribute};
use ocxlpmem_regs::{Chi, Opcode, PayloadHeader, PayloadId};
use serde::Serialize;

/// Life used at or above this percentage raises `alarm_lifetime` (health `non-critical`).
pub const LIFE_USED_ALARM_PERCENT: u8 = 90;

/// One SMART attribute (§3.6), decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SmartAttribute {
    /// Bits 63:56 of word 0.
    pub id: u8,
    /// `power_on_hours`, `temperature`, `life_remaining` or `unknown`.
    pub name: &'static str,
    /// Bits 55:40.
    pub flags: u16,
    /// Bits 39:32: current (normalised) value.
    pub current: u8,
    /// Bits 31:24.
    pub threshold: u8,
    /// Bits 23:16.
    pub worst: u8,
    /// Word 1 (units: §3.6 Decision).
    pub raw: u64,
}

impl SmartAttribute {
    /// SMART convention: a normalised value at or below a non-zero threshold is failing.
    pub fn is_failing(&self) -> bool {
        self.threshold != 0 && self.current <= self.threshold
    }
}

impl From<Attribute> for SmartAttribute {
    fn from(a: Attribute) -> Self {
        Self {
            id: a.id,
            name: a.name(),
            flags: a.flags,
            current: a.current,
            threshold: a.threshold,
            worst: a.worst,
            raw: a.raw,
        }
    }
}

/// Decodes a "SM" payload (header included): `length / 16` attributes from +0x08.
pub fn decode_smart(bytes: &[u8]) -> Result<Vec<SmartAttribute>, ProtocolError> {
    let word = |at: usize| -> Option<u64> {
        bytes
            .get(at..at.checked_add(8)?)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
    };
    let h = PayloadHeader::decode(word(0).unwrap_or(0), PayloadId::Smart);
    if h.id != PayloadId::Smart.code() {
        return Err(ProtocolError::WrongPayloadId {
            expected: PayloadId::Smart,
            seen: h.id_text(),
            seen_code: h.id,
        });
    }
    let have = (bytes.len() as u64).saturating_sub(8);
    if h.length > have {
        return Err(ProtocolError::LengthBeyondBuffer {
            what: "SMART payload length",
            length: h.length,
            limit: have,
        });
    }
    let count = usize::try_from(h.length / sm::ATTRIBUTE_SIZE).unwrap_or(0);
    let mut attrs = Vec::with_capacity(count);
    for i in 0..count {
        let at = 8 + 16 * i;
        // In bounds: 8 + 16 * count <= 8 + length <= bytes.len().
        let (Some(w0), Some(w1)) = (word(at), word(at + 8)) else {
            break;
        };
        attrs.push(Attribute::decode(w0, w1).into());
    }
    Ok(attrs)
}

/// ndctl's `health_state` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum HealthState {
    /// Nothing to report.
    #[serde(rename = "ok")]
    Ok,
    /// An alarm is raised but nothing is failing yet.
    #[serde(rename = "non-critical")]
    NonCritical,
    /// An attribute is failing or the media's life is used up.
    #[serde(rename = "critical")]
    Critical,
    /// The controller is in a fatal state.
    #[serde(rename = "fatal")]
    Fatal,
}

/// A health summary shaped like ndctl's health object. How each field is derived:
///
/// * `health_state`: `fatal` when CHI.CFFS or CHI.CHFS is set (SMART is then not sent);
///   else `critical` when any attribute is failing (normalised value at or below a
///   non-zero threshold) or `life_used_percentage` is 100; else `non-critical` when
///   `alarm_lifetime` is raised; else `ok`. (A hot card alone raises `alarm_temperature`
///   through the temperature attribute's threshold, which also makes it failing.)
/// * `temperature_celsius`: raw value of attribute 0xC2 (§3.6 Decision: degrees C).
/// * `life_used_percentage`: 100 - raw value of attribute 0xCA (percent of life
///   remaining, §3.6 Decision), clamped to 0..=100.
/// * `power_on_hours`: raw value of attribute 0x09 (hours).
/// * `alarm_temperature`: the temperature attribute is failing.
/// * `alarm_lifetime`: the life attribute is failing or life used >= 90 %.
/// * fields ndctl has that the card does not report (spares, shutdown state/count) are
///   left out rather than invented.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    /// See the type's documentation.
    pub health_state: HealthState,
    /// Attribute 0xC2 raw, if reported.
    pub temperature_celsius: Option<u64>,
    /// 100 - attribute 0xCA raw, if reported.
    pub life_used_percentage: Option<u8>,
    /// Attribute 0x09 raw, if reported.
    pub power_on_hours: Option<u64>,
    /// Temperature attribute failing.
    pub alarm_temperature: bool,
    /// Life attribute failing or life used >= 90 %.
    pub alarm_lifetime: bool,
    /// Ids of the failing attributes.
    pub failing_attributes: Vec<u8>,
}

impl Health {
    /// Derives the summary from CHI and the attributes (documented on the type).
    pub fn derive(chi: Chi, attrs: &[SmartAttribute]) -> Self {
        let find = |id| attrs.iter().find(|a| a.id == id);
        let temp = find(sm::ID_TEMPERATURE);
        let life = find(sm::ID_LIFE_REMAINING);
        let life_used = life.map(|a| 100 - a.raw.min(100) as u8);
        let alarm_temperature = temp.is_some_and(SmartAttribute::is_failing);
        let alarm_lifetime = life.is_some_and(SmartAttribute::is_failing)
            || life_used.is_some_and(|u| u >= LIFE_USED_ALARM_PERCENT);
        let failing: Vec<u8> = attrs
            .iter()
            .filter(|a| a.is_failing())
            .map(|a| a.id)
            .collect();
        let health_state = if chi.is_fatal() {
            HealthState::Fatal
        } else if !failing.is_empty() || life_used == Some(100) {
            HealthState::Critical
        } else if alarm_lifetime {
            HealthState::NonCritical
        } else {
            HealthState::Ok
        };
        Self {
            health_state,
            temperature_celsius: temp.map(|a| a.raw),
            life_used_percentage: life_used,
            power_on_hours: find(sm::ID_POWER_ON_HOURS).map(|a| a.raw),
            alarm_temperature,
            alarm_lifetime,
            failing_attributes: failing,
        }
    }
}

impl Admin {
    /// SMART (§3.6): every attribute the card reports.
    pub fn smart(&self) -> Result<Vec<SmartAttribute>, AdminError> {
        let size = usize::try_from(self.admin.layout.data_size).unwrap_or(0);
        let mut buf = vec![0u8; size];
        let c = self.send(&table::SMART, &[0], &[], &mut buf)?;
        buf.truncate(c.len);
        decode_smart(&buf).map_err(|kind| AdminError::Protocol {
            opcode: Opcode::Smart,
            kind,
        })
    }

    /// The health summary ([`Health`] documents each field's derivation). A card in a
    /// fatal state gives `fatal` without sending SMART.
    pub fn health(&self) -> Result<Health, AdminError> {
        let chi = self.read_chi()?;
        if chi.is_fatal() {
            return Ok(Health::derive(chi, &[]));
        }
        let attrs = self.smart()?;
        Ok(Health::derive(chi, &attrs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(id: u8, current: u8, threshold: u8, raw: u64) -> Attribute {
        Attribute {
            id,
            flags: 0,
            current,
            threshold,
            worst: current,
            raw,
        }
    }

    fn payload(attrs: &[Attribute]) -> Vec<u8> {
        let mut b = PayloadHeader::encode(PayloadId::Smart, 16 * attrs.len() as u64)
            .to_le_bytes()
            .to_vec();
        for a in attrs {
            for w in a.encode() {
                b.extend_from_slice(&w.to_le_bytes());
            }
        }
        b
    }

    #[test]
    fn decodes_length_over_16_attributes() {
        let b = payload(&[attr(0x09, 100, 0, 1234), attr(0xC2, 90, 10, 41)]);
        let a = decode_smart(&b).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].name, "power_on_hours");
        assert_eq!(a[0].raw, 1234);
        assert_eq!(
            (a[1].id, a[1].current, a[1].threshold, a[1].raw),
            (0xC2, 90, 10, 41)
        );
    }

    #[test]
    fn smart_length_past_the_bytes_is_a_protocol_error() {
        let mut b = payload(&[attr(0x09, 100, 0, 1)]);
        b[..8].copy_from_slice(&PayloadHeader::encode(PayloadId::Smart, 32).to_le_bytes());
        assert!(matches!(
            decode_smart(&b),
            Err(ProtocolError::LengthBeyondBuffer { length: 32, .. })
        ));
        let mut b = payload(&[]);
        b[..8].copy_from_slice(&PayloadHeader::encode(PayloadId::ErrorLog, 0).to_le_bytes());
        assert!(matches!(
            decode_smart(&b),
            Err(ProtocolError::WrongPayloadId { .. })
        ));
    }

    #[test]
    fn health_fields_follow_their_documented_derivation() {
        let healthy: Vec<SmartAttribute> = [
            attr(0x09, 100, 0, 77),
            attr(0xC2, 100, 10, 41),
            attr(0xCA, 95, 5, 95),
        ]
        .map(Into::into)
        .to_vec();
        let ready = Chi(Chi::CRDY | Chi::MA);
        let h = Health::derive(ready, &healthy);
        assert_eq!(h.health_state, HealthState::Ok);
        assert_eq!(h.temperature_celsius, Some(41));
        assert_eq!(h.life_used_percentage, Some(5));
        assert_eq!(h.power_on_hours, Some(77));
        assert!(!h.alarm_temperature && !h.alarm_lifetime);

        let mut worn = healthy.clone();
        worn[2].raw = 8;
        let h = Health::derive(ready, &worn);
        assert_eq!(h.life_used_percentage, Some(92));
        assert!(h.alarm_lifetime);
        assert_eq!(h.health_state, HealthState::NonCritical);

        let mut hot = healthy.clone();
        hot[1].current = 9;
        let h = Health::derive(ready, &hot);
        assert!(h.alarm_temperature);
        assert_eq!(h.failing_attributes, [0xC2]);
        assert_eq!(h.health_state, HealthState::Critical);

        let h = Health::derive(Chi(Chi::CFFS), &healthy);
        assert_eq!(h.health_state, HealthState::Fatal);
        let h = Health::derive(ready, &[]);
        assert_eq!(h.health_state, HealthState::Ok);
        assert_eq!(h.temperature_celsius, None);
    }

    #[test]
    fn health_serialises_like_ndctl() {
        let h = Health::derive(Chi(Chi::CRDY | Chi::MA), &[attr(0xCA, 50, 5, 5).into()]);
        let v = serde_json::to_value(&h).unwrap();
        assert_eq!(v["health_state"], "non-critical");
        assert_eq!(v["life_used_percentage"], 95);
        assert_eq!(v["temperature_celsius"], serde_json::Value::Null);
    }
}
