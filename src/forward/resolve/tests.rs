use super::*;

fn url(s: &str) -> Url {
    parse_url(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn urls_with_default_ports() {
    let u = url("nats://127.0.0.1");
    assert_eq!(
        (u.scheme, u.host, u.port),
        (Scheme::Nats, Host::Ip([127, 0, 0, 1].into()), 4222)
    );
    assert_eq!(url("tls://broker.lan").port, 4222);
    assert!(url("tls://broker.lan").scheme.is_tls());
    assert_eq!(url("mqtt://broker.lan").port, 1883);
    assert_eq!(url("MQTTS://Broker.LAN./").port, 8883);
    assert_eq!(
        url("MQTTS://Broker.LAN./").host,
        Host::Name("broker.lan".into())
    );
    let u = url("nats://[::1]:4333");
    assert_eq!((u.host, u.port), (Host::Ip("::1".parse().unwrap()), 4333));
    let u = url("mqtt://ops:p%40ss%3Aword@10.1.2.3:1884");
    assert_eq!(u.username.as_deref(), Some("ops"));
    assert_eq!(u.password.as_deref(), Some("p@ss:word"));
    assert_eq!(u.port, 1884);
    let u = url("nats://token@host");
    assert_eq!((u.username.as_deref(), u.password), (Some("token"), None));
}

#[test]
fn bad_urls_say_what_is_wrong() {
    let err = |s: &str| parse_url(s).unwrap_err();
    assert!(matches!(err("127.0.0.1:4222"), UrlError::Scheme(_)));
    assert!(matches!(err("http://x"), UrlError::Scheme(_)));
    assert!(matches!(err("nats://"), UrlError::Host(_)));
    assert!(matches!(err("nats://a b"), UrlError::Host(_)));
    assert!(matches!(err("nats://a..b"), UrlError::Host(_)));
    assert!(matches!(err("nats://1.2.3.256"), UrlError::Host(_)));
    assert!(matches!(err("nats://[::1"), UrlError::Host(_)));
    assert!(matches!(err("nats://[zz]"), UrlError::Host(_)));
    assert!(matches!(err("nats://[::1]4222"), UrlError::Port(_)));
    assert!(matches!(err("nats://h:0"), UrlError::Port(_)));
    assert!(matches!(err("nats://h:65536"), UrlError::Port(_)));
    assert!(matches!(err("nats://h:+1"), UrlError::Port(_)));
    assert!(matches!(err("nats://h:"), UrlError::Port(_)));
    assert!(matches!(err("nats://h/path"), UrlError::Trailing(_)));
    assert!(matches!(err("nats://h?x=1"), UrlError::Trailing(_)));
    assert!(matches!(err("nats://u:%zz@h"), UrlError::Escape));
    assert!(matches!(err("nats://u:%ff@h"), UrlError::Escape));
    assert!(
        err("ftp://x")
            .to_string()
            .contains("nats://, tls://, mqtt:// or mqtts://")
    );
}

#[test]
fn cluster_urls_from_info() {
    assert_eq!(
        parse_host_port("10.0.0.2:4222", 4222),
        Ok((Host::Ip([10, 0, 0, 2].into()), 4222))
    );
    assert_eq!(
        parse_host_port("[fd00::2]:5222", 4222),
        Ok((Host::Ip("fd00::2".parse().unwrap()), 5222))
    );
    assert_eq!(
        parse_host_port("n2", 4222),
        Ok((Host::Name("n2".into()), 4222))
    );
}

const HOSTS: &str = "127.0.0.1 localhost\n\
# comment 10.0.0.9 broker\n\
10.0.0.7\tbroker.lan broker   # the box\n\
fe80::1%eth0 broker\n\
fd00::7 broker.lan\n\
10.0.0.7 broker\n\
not-an-ip broker\n";

#[test]
fn hosts_file() {
    assert_eq!(hosts_lookup(HOSTS, "broker"), [IpAddr::from([10, 0, 0, 7])]);
    assert_eq!(
        hosts_lookup(HOSTS, "BROKER.lan."),
        [IpAddr::from([10, 0, 0, 7]), "fd00::7".parse().unwrap()]
    );
    assert!(hosts_lookup(HOSTS, "other").is_empty());
    assert!(hosts_lookup("", "x").is_empty());
}

#[test]
fn resolv_conf() {
    let c = ResolvConf::parse(
        "# generated\nnameserver 10.0.0.53\nnameserver fd00::53\nnameserver bogus\n\
         nameserver 10.0.0.54\nnameserver 10.0.0.55\ndomain old.lan\nsearch a.lan b.lan.\n\
         options ndots:2 timeout:1 attempts:9 rotate\n",
    );
    assert_eq!(
        c.nameservers,
        [
            SocketAddr::from(([10, 0, 0, 53], 53)),
            "[fd00::53]:53".parse().unwrap(),
            SocketAddr::from(([10, 0, 0, 54], 53)),
        ]
    );
    assert_eq!(c.search, ["a.lan", "b.lan"]);
    assert_eq!((c.ndots, c.timeout_ms, c.attempts), (2, 1000, 5));
    let d = ResolvConf::parse("");
    assert_eq!(d.nameservers, [SocketAddr::from(([127, 0, 0, 1], 53))]);
    assert_eq!((d.ndots, d.timeout_ms, d.attempts), (1, 5000, 2));
    assert_eq!(
        ResolvConf::parse("search a.lan\ndomain z.lan").search,
        ["z.lan"]
    );
}

#[test]
fn resolve_order_literal_hosts_localhost_dns() {
    let conf = ResolvConf::parse("nameserver 10.0.0.53");
    let ready = |h: &Host, hosts: &str| match resolve(h, hosts, &conf, 0, 1) {
        Resolution::Ready(ips) => ips,
        Resolution::Dns(_) => panic!("{h} went to DNS"),
    };
    let ip = IpAddr::from([192, 0, 2, 1]);
    assert_eq!(ready(&Host::Ip(ip), HOSTS), [ip]);
    let v6: IpAddr = "fd00::7".parse().unwrap();
    let v4 = IpAddr::from([10, 0, 0, 7]);
    // IPv4 first even when the file lists IPv6 first.
    assert_eq!(
        ready(
            &Host::Name("broker.lan".into()),
            "fd00::7 broker.lan\n10.0.0.7 broker.lan\n"
        ),
        [v4, v6]
    );
    assert_eq!(
        ready(&Host::Name("localhost".into()), ""),
        [
            IpAddr::from(Ipv4Addr::LOCALHOST),
            IpAddr::from(Ipv6Addr::LOCALHOST)
        ]
    );
    assert_eq!(
        ready(&Host::Name("localhost".into()), HOSTS),
        [IpAddr::from([127, 0, 0, 1])]
    );
    match resolve(&Host::Name("elsewhere.lan".into()), HOSTS, &conf, 0, 1) {
        Resolution::Dns(mut l) => {
            assert_eq!(
                l.poll_transmit().unwrap().to,
                SocketAddr::from(([10, 0, 0, 53], 53))
            );
        }
        Resolution::Ready(ips) => panic!("{ips:?}"),
    }
}
