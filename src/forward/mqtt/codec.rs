//! MQTT 3.1.1 packets: the ones a client sends, encoded, and the ones a server sends,
//! decoded one at a time from the front of a buffer (the shape of mosquitto's
//! `packet_mosq.c`: fixed header, remaining length, then the body once it is all there).
//!
//! Decoding checks what the standard fixes (reserved flag bits, exact lengths, QoS, a
//! non-zero packet id, UTF-8 topics without wildcards or NUL) so that a broken server is
//! caught at its first bad byte instead of confusing the engine later.

use std::fmt;

/// The largest remaining length four varint bytes can carry (MQTT 3.1.1 §2.2.3).
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// One packet from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    ConnAck {
        session_present: bool,
        code: u8,
    },
    Publish {
        dup: bool,
        qos: u8,
        retain: bool,
        topic: &'a str,
        /// Present exactly when `qos > 0`.
        packet_id: Option<u16>,
        payload: &'a [u8],
    },
    PubAck(u16),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    SubAck {
        packet_id: u16,
        return_codes: &'a [u8],
    },
    UnsubAck(u16),
    PingResp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A packet and the number of bytes it used.
    Packet(Packet<'a>, usize),
    /// Look again once the buffer holds `need` bytes.
    Partial { need: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// A fifth remaining-length byte.
    BadRemainingLength,
    /// A packet longer than the caller's limit.
    TooLarge(usize),
    /// A packet type a server never sends (CONNECT, SUBSCRIBE, PINGREQ...) or a reserved one.
    BadType(u8),
    /// Reserved fixed-header flag bits set wrongly, or QoS 3.
    BadFlags(u8),
    /// A body whose length does not fit its type.
    BadLength(&'static str),
    /// A topic that is not UTF-8, is empty, or holds a wildcard or NUL.
    BadTopic,
    ZeroPacketId,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::BadRemainingLength => f.write_str("remaining length over four bytes"),
            DecodeError::TooLarge(n) => write!(f, "packet of {n} bytes is over the limit"),
            DecodeError::BadType(t) => write!(f, "packet type {t} is not sent by servers"),
            DecodeError::BadFlags(b) => write!(f, "bad fixed header flags in 0x{b:02x}"),
            DecodeError::BadLength(what) => write!(f, "bad length for {what}"),
            DecodeError::BadTopic => f.write_str("bad topic name"),
            DecodeError::ZeroPacketId => f.write_str("packet id 0"),
        }
    }
}

/// Decodes the packet at the front of `buf`; packets longer than `max_len` bytes in all
/// are refused before their body is waited for.
pub fn decode(buf: &[u8], max_len: usize) -> Result<Decoded<'_>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(Decoded::Partial { need: 1 });
    };
    let mut len = 0usize;
    let mut i = 1;
    loop {
        let Some(&b) = buf.get(i) else {
            return Ok(Decoded::Partial { need: i + 1 });
        };
        len |= usize::from(b & 0x7f) << (7 * (i - 1));
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        if i == 5 {
            return Err(DecodeError::BadRemainingLength);
        }
    }
    let total = i + len;
    if total > max_len {
        return Err(DecodeError::TooLarge(total));
    }
    if buf.len() < total {
        return Ok(Decoded::Partial { need: total });
    }
    let body = &buf[i..total];
    let (kind, flags) = (first >> 4, first & 0x0f);
    let fixed_flags = |want: u8| {
        if flags == want {
            Ok(())
        } else {
            Err(DecodeError::BadFlags(first))
        }
    };
    let id_only = |what| -> Result<u16, DecodeError> {
        if body.len() != 2 {
            return Err(DecodeError::BadLength(what));
        }
        nonzero_id(body)
    };
    let packet = match kind {
        2 => {
            fixed_flags(0)?;
            if body.len() != 2 || body[0] & 0xfe != 0 {
                return Err(DecodeError::BadLength("CONNACK"));
            }
            Packet::ConnAck {
                session_present: body[0] == 1,
                code: body[1],
            }
        }
        3 => publish(first, body)?,
        4 => {
            fixed_flags(0)?;
            Packet::PubAck(id_only("PUBACK")?)
        }
        5 => {
            fixed_flags(0)?;
            Packet::PubRec(id_only("PUBREC")?)
        }
        6 => {
            fixed_flags(2)?;
            Packet::PubRel(id_only("PUBREL")?)
        }
        7 => {
            fixed_flags(0)?;
            Packet::PubComp(id_only("PUBCOMP")?)
        }
        9 => {
            fixed_flags(0)?;
            if body.len() < 3 {
                return Err(DecodeError::BadLength("SUBACK"));
            }
            Packet::SubAck {
                packet_id: nonzero_id(body)?,
                return_codes: &body[2..],
            }
        }
        11 => {
            fixed_flags(0)?;
            Packet::UnsubAck(id_only("UNSUBACK")?)
        }
        13 => {
            fixed_flags(0)?;
            if !body.is_empty() {
                return Err(DecodeError::BadLength("PINGRESP"));
            }
            Packet::PingResp
        }
        other => return Err(DecodeError::BadType(other)),
    };
    Ok(Decoded::Packet(packet, total))
}

fn nonzero_id(b: &[u8]) -> Result<u16, DecodeError> {
    match u16::from_be_bytes([b[0], b[1]]) {
        0 => Err(DecodeError::ZeroPacketId),
        id => Ok(id),
    }
}

fn publish(first: u8, body: &[u8]) -> Result<Packet<'_>, DecodeError> {
    let qos = (first >> 1) & 3;
    if qos == 3 {
        return Err(DecodeError::BadFlags(first));
    }
    let short = DecodeError::BadLength("PUBLISH");
    if body.len() < 2 {
        return Err(short);
    }
    let topic_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let rest = &body[2..];
    if rest.len() < topic_len {
        return Err(short);
    }
    let topic = std::str::from_utf8(&rest[..topic_len]).map_err(|_| DecodeError::BadTopic)?;
    if topic.is_empty() || topic.contains(['+', '#', '\0']) {
        return Err(DecodeError::BadTopic);
    }
    let mut rest = &rest[topic_len..];
    let packet_id = if qos > 0 {
        if rest.len() < 2 {
            return Err(short);
        }
        let id = nonzero_id(rest)?;
        rest = &rest[2..];
        Some(id)
    } else {
        None
    };
    Ok(Packet::Publish {
        dup: first & 0x08 != 0,
        qos,
        retain: first & 0x01 != 0,
        topic,
        packet_id,
        payload: rest,
    })
}

/// Appends the remaining-length varint. `len` must be at most [`MAX_REMAINING_LENGTH`].
pub fn put_remaining_length(out: &mut Vec<u8>, mut len: usize) {
    debug_assert!(len <= MAX_REMAINING_LENGTH);
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        out.push(b);
        if len == 0 {
            break;
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    // Callers check lengths against u16 when they take the strings in.
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

/// The fields of a CONNECT packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect<'a> {
    pub client_id: &'a str,
    pub clean_session: bool,
    pub keep_alive_secs: u16,
    pub username: Option<&'a str>,
    /// Only with a username (MQTT-3.1.2-22).
    pub password: Option<&'a [u8]>,
}

pub fn encode_connect(out: &mut Vec<u8>, c: &Connect<'_>) {
    let mut flags = 0u8;
    if c.clean_session {
        flags |= 0x02;
    }
    if c.username.is_some() {
        flags |= 0x80;
        if c.password.is_some() {
            flags |= 0x40;
        }
    }
    let mut body = Vec::with_capacity(16 + c.client_id.len());
    put_str(&mut body, b"MQTT");
    body.push(4); // protocol level: 3.1.1
    body.push(flags);
    body.extend_from_slice(&c.keep_alive_secs.to_be_bytes());
    put_str(&mut body, c.client_id.as_bytes());
    if let Some(user) = c.username {
        put_str(&mut body, user.as_bytes());
        if let Some(pass) = c.password {
            put_str(&mut body, pass);
        }
    }
    out.push(0x10);
    put_remaining_length(out, body.len());
    out.extend_from_slice(&body);
}

/// The remaining length of a PUBLISH: topic, packet id if QoS 1, payload.
pub fn publish_len(topic: &str, qos1: bool, payload_len: usize) -> usize {
    2 + topic.len() + if qos1 { 2 } else { 0 } + payload_len
}

/// A PUBLISH, QoS 1 when `packet_id` is given, else QoS 0. The caller has checked that
/// [`publish_len`] is at most [`MAX_REMAINING_LENGTH`].
pub fn encode_publish(
    out: &mut Vec<u8>,
    topic: &str,
    packet_id: Option<u16>,
    dup: bool,
    payload: &[u8],
) {
    let mut first = 0x30;
    if packet_id.is_some() {
        first |= 0x02;
    }
    if dup {
        first |= 0x08;
    }
    out.push(first);
    put_remaining_length(out, publish_len(topic, packet_id.is_some(), payload.len()));
    put_str(out, topic.as_bytes());
    if let Some(id) = packet_id {
        out.extend_from_slice(&id.to_be_bytes());
    }
    out.extend_from_slice(payload);
}

fn encode_id_packet(out: &mut Vec<u8>, first: u8, id: u16) {
    out.extend_from_slice(&[first, 2]);
    out.extend_from_slice(&id.to_be_bytes());
}

pub fn encode_puback(out: &mut Vec<u8>, id: u16) {
    encode_id_packet(out, 0x40, id);
}

pub fn encode_pubrec(out: &mut Vec<u8>, id: u16) {
    encode_id_packet(out, 0x50, id);
}

pub fn encode_pubcomp(out: &mut Vec<u8>, id: u16) {
    encode_id_packet(out, 0x70, id);
}

/// SUBSCRIBE to one topic filter (used by tests and tools; the sink never subscribes).
pub fn encode_subscribe(out: &mut Vec<u8>, id: u16, filter: &str, qos: u8) {
    out.push(0x82);
    put_remaining_length(out, 2 + 2 + filter.len() + 1);
    out.extend_from_slice(&id.to_be_bytes());
    put_str(out, filter.as_bytes());
    out.push(qos);
}

pub fn encode_pingreq(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0xc0, 0]);
}

pub fn encode_disconnect(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0xe0, 0]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(buf: &[u8]) -> Packet<'_> {
        match decode(buf, 1 << 20) {
            Ok(Decoded::Packet(p, n)) => {
                assert_eq!(n, buf.len());
                p
            }
            other => panic!("{buf:02x?}: {other:?}"),
        }
    }

    #[test]
    fn remaining_length_round_trips_at_the_boundaries() {
        for len in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            2_097_151,
            2_097_152,
            MAX_REMAINING_LENGTH,
        ] {
            let mut out = vec![0xd0];
            put_remaining_length(&mut out, len);
            let want = match len {
                0..=127 => 1,
                128..=16_383 => 2,
                16_384..=2_097_151 => 3,
                _ => 4,
            };
            assert_eq!(out.len(), 1 + want, "{len}");
            // A PINGRESP header with that length: the decoder waits for the whole body.
            assert_eq!(
                decode(&out, usize::MAX),
                if len == 0 {
                    Ok(Decoded::Packet(Packet::PingResp, 2))
                } else {
                    Ok(Decoded::Partial {
                        need: out.len() + len,
                    })
                },
                "{len}"
            );
        }
        assert_eq!(
            decode(&[0xd0, 0xff, 0xff, 0xff, 0xff, 0x01], usize::MAX),
            Err(DecodeError::BadRemainingLength)
        );
        assert_eq!(decode(&[0xd0, 0x80], 10), Ok(Decoded::Partial { need: 3 }));
        assert_eq!(
            decode(&[0xd0, 0x80, 0x01], 10),
            Err(DecodeError::TooLarge(131))
        );
    }

    #[test]
    fn server_packets() {
        assert_eq!(
            one(&[0x20, 2, 0, 0]),
            Packet::ConnAck {
                session_present: false,
                code: 0
            }
        );
        assert_eq!(
            one(&[0x20, 2, 1, 5]),
            Packet::ConnAck {
                session_present: true,
                code: 5
            }
        );
        assert_eq!(one(&[0x40, 2, 0x12, 0x34]), Packet::PubAck(0x1234));
        assert_eq!(one(&[0x50, 2, 0, 1]), Packet::PubRec(1));
        assert_eq!(one(&[0x62, 2, 0, 1]), Packet::PubRel(1));
        assert_eq!(one(&[0x70, 2, 0, 1]), Packet::PubComp(1));
        assert_eq!(
            one(&[0x90, 3, 0, 7, 1]),
            Packet::SubAck {
                packet_id: 7,
                return_codes: &[1]
            }
        );
        assert_eq!(one(&[0xb0, 2, 0, 7]), Packet::UnsubAck(7));
        assert_eq!(one(&[0xd0, 0]), Packet::PingResp);
        assert_eq!(
            one(&[0x3b, 8, 0, 3, b'a', b'/', b'b', 0, 9, b'x']),
            Packet::Publish {
                dup: true,
                qos: 1,
                retain: true,
                topic: "a/b",
                packet_id: Some(9),
                payload: b"x"
            }
        );
        assert_eq!(
            one(&[0x30, 3, 0, 1, b'a']),
            Packet::Publish {
                dup: false,
                qos: 0,
                retain: false,
                topic: "a",
                packet_id: None,
                payload: b""
            }
        );
    }

    #[test]
    fn malformed_server_packets() {
        let err = |b: &[u8]| decode(b, 1 << 20).unwrap_err();
        assert_eq!(err(&[0x10, 0]), DecodeError::BadType(1));
        assert_eq!(err(&[0xc0, 0]), DecodeError::BadType(12));
        assert_eq!(err(&[0x00, 0]), DecodeError::BadType(0));
        assert_eq!(err(&[0xf0, 0]), DecodeError::BadType(15));
        assert_eq!(err(&[0x21, 2, 0, 0]), DecodeError::BadFlags(0x21));
        assert_eq!(err(&[0x60, 2, 0, 1]), DecodeError::BadFlags(0x60));
        assert_eq!(err(&[0x20, 3, 0, 0, 0]), DecodeError::BadLength("CONNACK"));
        assert_eq!(err(&[0x20, 2, 2, 0]), DecodeError::BadLength("CONNACK"));
        assert_eq!(err(&[0x40, 2, 0, 0]), DecodeError::ZeroPacketId);
        assert_eq!(err(&[0x40, 1, 0]), DecodeError::BadLength("PUBACK"));
        assert_eq!(err(&[0xd0, 1, 0]), DecodeError::BadLength("PINGRESP"));
        assert_eq!(err(&[0x90, 2, 0, 1]), DecodeError::BadLength("SUBACK"));
        assert_eq!(err(&[0x36, 3, 0, 1, b'a']), DecodeError::BadFlags(0x36));
        assert_eq!(
            err(&[0x32, 3, 0, 1, b'a']),
            DecodeError::BadLength("PUBLISH")
        );
        assert_eq!(
            err(&[0x30, 3, 0, 2, b'a']),
            DecodeError::BadLength("PUBLISH")
        );
        assert_eq!(err(&[0x30, 2, 0, 0]), DecodeError::BadTopic);
        assert_eq!(err(&[0x30, 3, 0, 1, b'#']), DecodeError::BadTopic);
        assert_eq!(err(&[0x30, 3, 0, 1, 0xff]), DecodeError::BadTopic);
        assert_eq!(err(&[0x32, 5, 0, 1, b'a', 0, 0]), DecodeError::ZeroPacketId);
    }

    #[test]
    fn client_packets_as_the_standard_spells_them() {
        let mut out = Vec::new();
        encode_connect(
            &mut out,
            &Connect {
                client_id: "id",
                clean_session: true,
                keep_alive_secs: 60,
                username: Some("u"),
                password: Some(b"pw"),
            },
        );
        assert_eq!(
            out,
            [
                0x10, 21, 0, 4, b'M', b'Q', b'T', b'T', 4, 0xc2, 0, 60, 0, 2, b'i', b'd', 0, 1,
                b'u', 0, 2, b'p', b'w'
            ]
        );
        out.clear();
        encode_publish(&mut out, "t/x", Some(0x0102), false, b"{}");
        assert_eq!(out, [0x32, 9, 0, 3, b't', b'/', b'x', 1, 2, b'{', b'}']);
        out.clear();
        encode_publish(&mut out, "t", None, true, b"");
        assert_eq!(out, [0x38, 3, 0, 1, b't']);
        out.clear();
        encode_subscribe(&mut out, 5, "a/#", 1);
        assert_eq!(out, [0x82, 8, 0, 5, 0, 3, b'a', b'/', b'#', 1]);
        out.clear();
        encode_puback(&mut out, 0xabcd);
        encode_pingreq(&mut out);
        encode_disconnect(&mut out);
        assert_eq!(out, [0x40, 2, 0xab, 0xcd, 0xc0, 0, 0xe0, 0]);
    }
}
