package seed

const (
	inventoryColumns = "product_id, warehouse_id, on_hand, reserved, updated_at"
	inventoryFields  = 5
	// stockedPercent is the chance that a product is stocked in a given
	// warehouse; every product is stocked in at least one.
	stockedPercent = 85
)

// inventoryGen generates the stock of each product in the warehouses that
// carry it. Which warehouses carry a product comes from its own stream, so
// the rows can be counted (for progress) without generating them.
type inventoryGen struct {
	warehouses int
	where      rowRand // which warehouses stock the product
	what       rowRand // the stock levels
	stocked    []bool
}

func newInventoryGen(seed int64, warehouses int) *inventoryGen {
	return &inventoryGen{
		warehouses: warehouses,
		where:      newRowRand(seed, streamInventory),
		what:       newRowRand(seed, streamInventoryLevels),
		stocked:    make([]bool, warehouses),
	}
}

// place fills g.stocked for product id and returns the number of warehouses
// stocking it.
func (g *inventoryGen) place(id int64) int {
	r := &g.where
	r.reset(id)
	n := 0
	for w := range g.stocked {
		g.stocked[w] = r.percent(stockedPercent)
		if g.stocked[w] {
			n++
		}
	}
	if n == 0 {
		g.stocked[r.n(g.warehouses)] = true
		n = 1
	}
	return n
}

// count returns the number of inventory rows of products from..to.
func (g *inventoryGen) count(from, to int64) int64 {
	var n int64
	for id := from; id <= to; id++ {
		n += int64(g.place(id))
	}
	return n
}

func (g *inventoryGen) appendRows(b []byte, id int64) ([]byte, int) {
	n := g.place(id)
	r := &g.what
	r.reset(id)
	for w, ok := range g.stocked {
		if !ok {
			continue
		}
		var onHand, reserved int32
		if !r.percent(8) { // 8% out of stock
			onHand = int32(1 + r.n(500))
			if r.percent(5) {
				reserved = onHand // all of it reserved: nothing available
			} else {
				reserved = int32(r.n(int(onHand)/5 + 1))
			}
		}
		b = appendTupleHeader(b, inventoryFields)
		b = appendInt64Field(b, id)
		b = appendInt64Field(b, int64(w+1))
		b = appendInt32Field(b, onHand)
		b = appendInt32Field(b, reserved)
		b = appendTimeField(b, EpochUnix-1-r.n64(30*day))
	}
	return b, n
}
