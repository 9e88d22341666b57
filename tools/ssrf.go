package tools

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// The direct fetcher reads URLs a model wrote, so it must not become a way
// into the machine's own network. Every connection it makes, the first and
// each redirect hop, goes through guardedDialer: the host is resolved, every
// address is checked, and the connection is made to exactly the address
// that was checked (so a DNS answer that changes between check and connect
// cannot steer it elsewhere).

// metadataAddrs are cloud instance-metadata endpoints. They stay refused
// even with AllowPrivate, which is meant for intranet pages, not for the
// credentials these addresses hand out.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"), // AWS, GCP, Azure, OpenStack, …
	netip.MustParseAddr("169.254.170.2"),   // AWS ECS task metadata
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
	netip.MustParseAddr("fd00:ec2::254"),   // AWS IPv6
}

type namedPrefix struct {
	p    netip.Prefix
	what string
}

var blockedPrefixes = []namedPrefix{
	{netip.MustParsePrefix("0.0.0.0/8"), "a 'this network' address"},
	{netip.MustParsePrefix("10.0.0.0/8"), "a private address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a carrier-grade NAT address"},
	{netip.MustParsePrefix("127.0.0.0/8"), "a loopback address"},
	{netip.MustParsePrefix("169.254.0.0/16"), "a link-local address"},
	{netip.MustParsePrefix("172.16.0.0/12"), "a private address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "a reserved address"},
	{netip.MustParsePrefix("192.0.2.0/24"), "a documentation address"},
	{netip.MustParsePrefix("192.168.0.0/16"), "a private address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a benchmarking address"},
	{netip.MustParsePrefix("198.51.100.0/24"), "a documentation address"},
	{netip.MustParsePrefix("203.0.113.0/24"), "a documentation address"},
	{netip.MustParsePrefix("224.0.0.0/4"), "a multicast address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address"},
	{netip.MustParsePrefix("::/128"), "the unspecified address"},
	{netip.MustParsePrefix("::1/128"), "a loopback address"},
	// IPv4-compatible addresses (RFC 4291 §2.5.5.1) are deprecated; some
	// stacks still route ::a.b.c.d to a.b.c.d, so none may be dialled.
	{netip.MustParsePrefix("::/96"), "a deprecated IPv4-compatible address"},
	// Local-use NAT64 (RFC 8215): the translator's prefix length, and so
	// where the IPv4 address sits, is a local choice; it reaches whatever
	// the operator's translator reaches, the intranet included.
	{netip.MustParsePrefix("64:ff9b:1::/48"), "a local-use NAT64 address"},
	{netip.MustParsePrefix("fc00::/7"), "a private address"},
	{netip.MustParsePrefix("fe80::/10"), "a link-local address"},
	{netip.MustParsePrefix("ff00::/8"), "a multicast address"},
	{netip.MustParsePrefix("2001:db8::/32"), "a documentation address"},
	{netip.MustParsePrefix("2001::/32"), "a Teredo tunnel address"},
}

var (
	// v4Mapped is ::ffff:0:0/96. Unmap turns these into IPv4 addresses, but
	// the check below names the prefix too, so no later edit can drop it.
	v4Mapped = netip.MustParsePrefix("::ffff:0:0/96")
	// v4Translated is SIIT's ::ffff:0:a.b.c.d (RFC 2765), which Unmap
	// leaves alone.
	v4Translated = netip.MustParsePrefix("::ffff:0:0:0/96")
	nat64Prefix  = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour    = netip.MustParsePrefix("2002::/16")
	privateKinds = map[string]bool{
		"a private address": true, "a loopback address": true, "a link-local address": true,
		"a carrier-grade NAT address": true, "a local-use NAT64 address": true,
	}
)

// embeddedV4 returns the IPv4 address inside an IPv6 address of a prefix
// that carries one (IPv4-mapped, SIIT-translated, NAT64, 6to4).
func embeddedV4(ip netip.Addr) (netip.Addr, bool) {
	if !ip.Is6() {
		return netip.Addr{}, false
	}
	b := ip.As16()
	switch {
	case v4Mapped.Contains(ip), v4Translated.Contains(ip), nat64Prefix.Contains(ip):
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), true
	case sixToFour.Contains(ip):
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), true
	}
	return netip.Addr{}, false
}

// AddrPolicy decides which addresses the direct fetcher may connect to.
type AddrPolicy struct {
	// AllowPrivate lets it reach loopback, private, link-local and
	// carrier-grade NAT addresses (the --allow-private-fetch flag), for
	// corpora served on an intranet. Cloud metadata addresses stay refused.
	AllowPrivate bool
	// Allow lists prefixes that are always reachable, e.g. one internal
	// mirror; it overrides everything else, metadata included.
	Allow []netip.Prefix
}

// check returns nil when ip may be dialled, else why not.
func (p AddrPolicy) check(ip netip.Addr) error {
	// netip prefixes never contain a zoned address, so "fe80::1%eth0" would
	// slip past every check below with its zone on.
	ip = ip.WithZone("").Unmap()
	for _, a := range p.Allow {
		if a.Contains(ip) {
			return nil
		}
	}
	for _, m := range metadataAddrs {
		if ip == m {
			return fmt.Errorf("%s is a cloud metadata address", ip)
		}
	}
	// Addresses that embed an IPv4 address are judged by it.
	if v4, ok := embeddedV4(ip); ok {
		if err := p.check(v4); err != nil {
			return fmt.Errorf("%s embeds %v", ip, err)
		}
		return nil
	}
	for _, bp := range blockedPrefixes {
		if bp.p.Contains(ip) {
			if p.AllowPrivate && privateKinds[bp.what] {
				return nil
			}
			return fmt.Errorf("%s is %s", ip, bp.what)
		}
	}
	return nil
}

// Resolver looks up a host's addresses; net.DefaultResolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// refusedError is a connection the policy did not allow.
type refusedError struct {
	host   string
	reason error
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("refused to connect to %s: %v (private and internal addresses are blocked; --allow-private-fetch allows them)", e.host, e.reason)
}

// guardedDialer resolves, checks and dials the checked address.
type guardedDialer struct {
	policy   AddrPolicy
	resolver Resolver
	dialer   net.Dialer
}

func newGuardedDialer(policy AddrPolicy, resolver Resolver, timeout time.Duration) *guardedDialer {
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	g := &guardedDialer{policy: policy, resolver: resolver}
	g.dialer = net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	// A last check on the socket address itself, in case anything below us
	// ever substitutes an address.
	g.dialer.Control = func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return &refusedError{host: address, reason: err}
		}
		if err := g.policy.check(ap.Addr()); err != nil {
			return &refusedError{host: address, reason: err}
		}
		return nil
	}
	return g
}

func (g *guardedDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		ips, err = g.resolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, err
		}
		if len(ips) == 0 {
			return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
		}
	}
	// Refuse the host if any of its addresses is refused: a name that
	// mixes public and internal answers is a rebinding trick, not a site.
	for _, ip := range ips {
		if err := g.policy.check(ip); err != nil {
			return nil, &refusedError{host: host, reason: err}
		}
	}
	var errs []error
	for _, ip := range ips {
		conn, err := g.dialer.DialContext(ctx, network, net.JoinHostPort(ip.Unmap().String(), port))
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}
