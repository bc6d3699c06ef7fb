package danezone

import (
	"fmt"
	"sort"

	"github.com/danelab/danelab/plugin/danezone/zone"
	"github.com/miekg/dns"
)

// DaneZone implements control.Records: runtime record changes, signed and served at once.

// AddRecords adds records to their RRsets.
func (d *DaneZone) AddRecords(rrs []dns.RR) error {
	byZone := map[*servedZone][]zone.Edit{}
	var order []*servedZone
	for _, rr := range rrs {
		sz, err := d.zoneFor(rr.Header().Name)
		if err != nil {
			return err
		}
		if byZone[sz] == nil {
			order = append(order, sz)
		}
		byZone[sz] = append(byZone[sz], zone.Edit{Op: zone.Add, Name: rr.Header().Name, Type: rr.Header().Rrtype, RRs: []dns.RR{rr}})
	}
	for _, sz := range order {
		if err := sz.edit(byZone[sz], false); err != nil {
			return err
		}
	}
	return nil
}

// ReplaceRecords replaces the RRset name/qtype.
func (d *DaneZone) ReplaceRecords(name string, qtype uint16, rrs []dns.RR) error {
	sz, err := d.zoneFor(name)
	if err != nil {
		return err
	}
	return sz.edit([]zone.Edit{{Op: zone.Replace, Name: name, Type: qtype, RRs: rrs}}, false)
}

// RemoveRecords removes records, an RRset, or every RRset of a name.
func (d *DaneZone) RemoveRecords(name string, qtype uint16, rrs []dns.RR) error {
	sz, err := d.zoneFor(name)
	if err != nil {
		return err
	}
	return sz.edit([]zone.Edit{{Op: zone.Remove, Name: name, Type: qtype, RRs: rrs}}, false)
}

// ResetRecords drops every runtime change.
func (d *DaneZone) ResetRecords() {
	for _, sz := range d.zones.Load().byName {
		if err := sz.edit(nil, true); err != nil {
			log.Errorf("Resetting the records of %s: %v", sz.origin, err)
		}
	}
}

// Zones lists the zones served and their serials.
func (d *DaneZone) Zones() map[string]uint32 {
	out := map[string]uint32{}
	for o, sz := range d.zones.Load().byName {
		out[o] = sz.cur.Load().z.Serial
	}
	return out
}

func (d *DaneZone) zoneFor(name string) (*servedZone, error) {
	set := d.zones.Load()
	o := set.origin(dns.Fqdn(name))
	if o == "" {
		var zones []string
		for z := range set.byName {
			zones = append(zones, z)
		}
		sort.Strings(zones)
		return nil, fmt.Errorf("%s is in no zone served here (zones: %v)", name, zones)
	}
	return set.byName[o], nil
}
