//! The wire format byte for byte, as dbus-send and sd-bus write it, and the address syntax.

use super::conn::*;
use super::decode::*;
use super::encode::*;
use super::*;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn hello_is_marshalled_byte_for_byte() {
    // The Hello every bus client sends first, as dbus-send and sd-bus write it.
    let m = encode_call(&hello_call(), 1);
    let want = concat!(
        "6c010001",
        "00000000",
        "01000000",
        "6d000000",
        // PATH
        "01016f00",
        "15000000",
        "2f6f72672f667265656465736b746f702f4442757300",
        "0000",
        // INTERFACE
        "02017300",
        "14000000",
        "6f72672e667265656465736b746f702e4442757300",
        "000000",
        // MEMBER
        "03017300",
        "05000000",
        "48656c6c6f00",
        "0000",
        // DESTINATION (the fields array's length, 0x6d, ends here)
        "06017300",
        "14000000",
        "6f72672e667265656465736b746f702e4442757300",
        // pad to 8 before the (empty) body: 128 bytes in all
        "000000"
    );
    assert_eq!(m.len(), 128);
    assert_eq!(hex(&m), want);
    let d = decode(&m).unwrap();
    assert_eq!(d.member.as_deref(), Some("Hello"));
    assert_eq!(d.serial, 1);
    assert_eq!(message_len(&m).unwrap(), Some(m.len()));
}

#[test]
fn variants_arrays_and_structs_align_as_the_spec_says() {
    let mut e = Enc::default();
    e.props(&[
        ("PIDs".into(), Value::U32s(vec![42])),
        ("Delegate".into(), Value::Bool(true)),
        ("X".into(), Value::U64(7)),
    ]);
    let want = concat!(
        "48000000",
        "00000000", // array length 72, pad to the first struct at 8
        "04000000",
        "5049447300",
        "02617500",
        "000000",
        "04000000",
        "2a000000", // PIDs au [42]
        "08000000",
        "44656c656761746500",
        "016200",
        "01000000", // Delegate b true
        "00000000", // pad to the next struct
        "01000000",
        "5800",
        "017400",
        "00000000000000",
        "0700000000000000" // X t 7 at 72
    );
    assert_eq!(hex(&e.buf), want);
    let mut empty = Enc::default();
    empty.u32(1);
    empty.u32(2);
    empty.props(&[]);
    // An empty array still pads to its element alignment; the length excludes that padding.
    assert_eq!(hex(&empty.buf), "01000000020000000000000000000000");
}

#[test]
fn start_transient_unit_round_trips_through_the_decoder() {
    let call = Call {
        destination: Some("org.freedesktop.systemd1"),
        path: "/org/freedesktop/systemd1",
        interface: "org.freedesktop.systemd1.Manager",
        member: "StartTransientUnit",
        args: vec![
            Arg::Val(Value::Str("synwire-0123abcd.scope".into())),
            Arg::Val(Value::Str("fail".into())),
            Arg::Props(vec![
                ("PIDs".into(), Value::U32s(vec![1234])),
                ("Delegate".into(), Value::Bool(true)),
                ("Slice".into(), Value::Str("synwire.slice".into())),
                ("Tags".into(), Value::Strs(vec!["a".into(), "bc".into()])),
            ]),
            Arg::AuxUnits(vec![]),
        ],
    };
    let bytes = encode_call(&call, 7);
    assert_eq!(
        bytes.len() % 8,
        0,
        "the fields pad to 8 and this body ends aligned"
    );
    let m = decode(&bytes).unwrap();
    assert_eq!(m.signature, "ssa(sv)a(sa(sv))");
    assert_eq!(m.member.as_deref(), Some("StartTransientUnit"));
    assert_eq!(
        m.body,
        vec![
            Got::Str("synwire-0123abcd.scope".into()),
            Got::Str("fail".into()),
            Got::Other,
            Got::Other
        ]
    );
}

#[test]
fn a_job_removed_signal_is_read_with_its_arguments() {
    // JobRemoved(uoss) as systemd sends it, built by hand.
    let mut body = Enc::default();
    body.u32(17);
    body.str("/org/freedesktop/systemd1/job/17");
    body.str("synwire-0123abcd.scope");
    body.str("done");
    let mut h = Enc::default();
    h.buf.extend_from_slice(&[b'l', SIGNAL, 1, 1]);
    h.u32(body.buf.len() as u32);
    h.u32(9);
    h.array(8, |e| {
        e.pad(8);
        e.u8(1);
        e.sig("o");
        e.str("/org/freedesktop/systemd1");
        e.pad(8);
        e.u8(2);
        e.sig("s");
        e.str("org.freedesktop.systemd1.Manager");
        e.pad(8);
        e.u8(3);
        e.sig("s");
        e.str("JobRemoved");
        e.pad(8);
        e.u8(8);
        e.sig("g");
        e.sig("uoss");
    });
    h.pad(8);
    h.buf.extend_from_slice(&body.buf);
    let m = decode(&h.buf).unwrap();
    assert!(m.is_signal("org.freedesktop.systemd1.Manager", "JobRemoved"));
    assert_eq!(
        m.body,
        vec![
            Got::U32(17),
            Got::Str("/org/freedesktop/systemd1/job/17".into()),
            Got::Str("synwire-0123abcd.scope".into()),
            Got::Str("done".into())
        ]
    );
}

#[test]
fn an_error_reply_and_a_variant_return_are_decoded() {
    let mut body = Enc::default();
    body.variant(&Value::Bool(true));
    let mut h = Enc::default();
    h.buf.extend_from_slice(&[b'l', METHOD_RETURN, 1, 1]);
    h.u32(body.buf.len() as u32);
    h.u32(3);
    h.array(8, |e| {
        e.pad(8);
        e.u8(5);
        e.sig("u");
        e.u32(2);
        e.pad(8);
        e.u8(8);
        e.sig("g");
        e.sig("v");
    });
    h.pad(8);
    h.buf.extend_from_slice(&body.buf);
    let m = decode(&h.buf).unwrap();
    assert_eq!(m.reply_serial, Some(2));
    assert_eq!(m.body, vec![Got::Bool(true)]);
    // Truncated input is an error, never a panic.
    for n in 0..h.buf.len() {
        let _ = decode(&h.buf[..n]);
    }
}

#[test]
fn external_auth_sends_the_uid_as_hex_of_its_digits() {
    assert_eq!(
        auth_bytes(1000),
        b"\0AUTH EXTERNAL 31303030\r\nBEGIN\r\n".to_vec()
    );
    assert_eq!(auth_bytes(0), b"\0AUTH EXTERNAL 30\r\nBEGIN\r\n".to_vec());
}

#[test]
fn bus_addresses_are_parsed_and_unescaped() {
    assert_eq!(
        parse_address("unix:path=/run/user/1000/bus"),
        vec![Addr::Path("/run/user/1000/bus".into())]
    );
    assert_eq!(
        parse_address("tcp:host=x,port=1;unix:abstract=/tmp/dbus-x%2Cy,guid=00ff"),
        vec![Addr::Abstract(b"/tmp/dbus-x,y".to_vec())]
    );
    assert!(parse_address("tcp:host=x").is_empty());
}
