package seed

import (
	"strings"
	"unicode"
)

// name is a first or last name in the three spellings the generator needs.
type name struct {
	lower string // for usernames: lower case, may be non-ASCII ("josé")
	ascii string // for e-mail addresses: folded to ASCII letters ("jose")
}

// category is a product category with the kinds of item sold in it.
type category struct {
	name  string
	items []string
}

// vocab holds the word lists, built once per Run so no package state is
// shared between runs.
type vocab struct {
	first, last  []name
	domains      []string
	categories   []category
	adjectives   []string
	materials    []string
	features     []string
	oddUsernames []string
	oddProducts  []string
}

func newVocab() *vocab {
	return &vocab{
		first: names(
			"Maria", "Anna", "Laura", "Sofia", "Emma", "Olivia", "Mia", "Lena", "Julia", "Sarah",
			"Hannah", "Lea", "Clara", "Emily", "Charlotte", "Amelia", "Isabella", "Ava", "Grace", "Chloe",
			"Lucy", "Alice", "Elena", "Carmen", "Lucia", "Paula", "Martina", "Valentina", "Camila", "Ana",
			"Ingrid", "Astrid", "Freya", "Sigrid", "Ewa", "Zofia", "Katarzyna", "Agnieszka", "Olga", "Irina",
			"Yuki", "Sakura", "Hana", "Mei", "Priya", "Ananya", "Aisha", "Fatima", "Leila", "Amara",
			"Nia", "Zara", "Ines", "Beatriz", "Marta", "Nora", "Ida", "Elif", "Ayşe", "Zoë",
			"Chloé", "Maëlle", "Renée", "Anaïs", "Lía", "Sofía", "Inés", "Björk", "Åsa", "Małgorzata",
			"James", "John", "Robert", "Michael", "David", "William", "Richard", "Thomas", "Daniel", "Matthew",
			"Lukas", "Leon", "Felix", "Jonas", "Paul", "Max", "Noah", "Elias", "Ben", "Finn",
			"Liam", "Oliver", "Jack", "Harry", "George", "Oscar", "Charlie", "Henry", "Samuel", "Leo",
			"Carlos", "Javier", "Diego", "Pablo", "Miguel", "Alejandro", "Mateo", "Luis", "Pedro", "Antonio",
			"Marco", "Luca", "Giovanni", "Matteo", "Lorenzo", "Pierre", "Louis", "Hugo", "Jules", "Arthur",
			"Piotr", "Jan", "Tomasz", "Ivan", "Dmitri", "Sergei", "Mehmet", "Mustafa", "Ali", "Omar",
			"Hiroshi", "Kenji", "Takeshi", "Wei", "Jun", "Min", "Raj", "Arjun", "Rahul", "Kwame",
			"Chidi", "Tariq", "Yusuf", "Erik", "Lars", "Nils", "Sven", "Anders", "Mikko", "Juha",
			"José", "Jürgen", "Björn", "Søren", "François", "Łukasz", "Ömer", "Andrés", "Joël", "Zoltán",
		),
		last: names(
			"Schmidt", "Mueller", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz", "Hoffmann",
			"Koch", "Richter", "Klein", "Wolf", "Neumann", "Schwarz", "Zimmermann", "Braun", "Hartmann", "Lange",
			"Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson", "Taylor",
			"Thomas", "Moore", "Martin", "Jackson", "White", "Harris", "Clark", "Lewis", "Walker", "Hall",
			"Young", "King", "Wright", "Hill", "Scott", "Green", "Adams", "Baker", "Nelson", "Carter",
			"Garcia", "Rodriguez", "Martinez", "Lopez", "Gonzalez", "Perez", "Sanchez", "Ramirez", "Torres", "Flores",
			"Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco",
			"Dubois", "Moreau", "Laurent", "Simon", "Michel", "Leroy", "Roux", "David", "Bertrand", "Morel",
			"Kowalski", "Nowak", "Wisniewski", "Wojcik", "Kaminski", "Ivanov", "Petrov", "Smirnov", "Popescu", "Horvath",
			"Jansen", "de Vries", "van Dijk", "Bakker", "Visser", "Hansen", "Johansson", "Nielsen", "Larsen", "Virtanen",
			"Yilmaz", "Kaya", "Demir", "Sato", "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Kim", "Lee",
			"Park", "Chen", "Wang", "Li", "Zhang", "Liu", "Nguyen", "Tran", "Singh", "Patel",
			"Sharma", "Gupta", "Khan", "Ahmed", "Hassan", "Okafor", "Mensah", "Silva", "Santos", "Oliveira",
			"Pereira", "Costa", "Murphy", "Kelly", "O'Brien", "O'Connor", "McCarthy", "Walsh", "Byrne", "Ryan",
			"García", "Müller", "Núñez", "Şahin", "Dvořák", "Øverby", "Çelik", "Löfgren", "Weiß", "Gómez",
		),
		domains: []string{
			"example.com", "example.com", "example.com", "example.org", "example.net",
			"mail.example.com", "inbox.example.net", "post.example.org",
		},
		categories: []category{
			{"Electronics", []string{"Headphones", "Speaker", "Charger", "Webcam", "Power Bank", "Earbuds", "Monitor Stand"}},
			{"Computers", []string{"Keyboard", "Mouse", "Laptop Sleeve", "USB Hub", "Docking Station", "SSD Enclosure"}},
			{"Home & Kitchen", []string{"Skillet", "Chef's Knife", "Cutting Board", "Kettle", "Coffee Grinder", "Mixing Bowl", "Teapot"}},
			{"Furniture", []string{"Desk", "Bookshelf", "Side Table", "Office Chair", "Bar Stool", "Nightstand"}},
			{"Garden", []string{"Planter", "Watering Can", "Hose Reel", "Pruning Shears", "Bird Feeder", "Garden Bench"}},
			{"Tools", []string{"Hammer", "Screwdriver Set", "Wrench", "Tape Measure", "Drill Bit Set", "Level"}},
			{"Clothing", []string{"T-Shirt", "Hoodie", "Jacket", "Scarf", "Beanie", "Cardigan", "Raincoat"}},
			{"Shoes", []string{"Sneakers", "Boots", "Sandals", "Loafers", "Running Shoes", "Slippers"}},
			{"Jewelry", []string{"Necklace", "Bracelet", "Ring", "Earrings", "Watch", "Pendant"}},
			{"Beauty", []string{"Face Cream", "Lip Balm", "Hair Brush", "Shampoo", "Perfume", "Nail Kit"}},
			{"Health", []string{"Yoga Mat", "Water Bottle", "Massage Ball", "First Aid Kit", "Pill Organizer"}},
			{"Sports & Outdoors", []string{"Tent", "Backpack", "Sleeping Bag", "Trekking Poles", "Headlamp", "Cooler"}},
			{"Toys & Games", []string{"Puzzle", "Board Game", "Building Blocks", "Kite", "Plush Bear", "Card Game"}},
			{"Baby", []string{"Stroller", "Baby Blanket", "Teether", "High Chair", "Diaper Bag", "Bib Set"}},
			{"Pet Supplies", []string{"Dog Leash", "Cat Tree", "Pet Bed", "Feeding Bowl", "Chew Toy", "Litter Box"}},
			{"Books", []string{"Notebook", "Cookbook", "Journal", "Sketchbook", "Field Guide", "Planner"}},
			{"Office Supplies", []string{"Pen Set", "Stapler", "Desk Organizer", "Paper Tray", "Label Maker", "Whiteboard"}},
			{"Music", []string{"Guitar Strap", "Ukulele", "Metronome", "Harmonica", "Drumsticks", "Music Stand"}},
			{"Automotive", []string{"Car Vacuum", "Phone Mount", "Tire Gauge", "Seat Cover", "Jump Starter", "Floor Mats"}},
			{"Grocery", []string{"Olive Oil", "Coffee Beans", "Green Tea", "Dark Chocolate", "Honey", "Granola"}},
			{"Video Games", []string{"Controller", "Headset", "Charging Dock", "Carry Case", "Racing Wheel"}},
		},
		adjectives: []string{
			"Classic", "Compact", "Deluxe", "Durable", "Elegant", "Ergonomic", "Essential", "Everyday",
			"Handcrafted", "Heavy-Duty", "Lightweight", "Modern", "Portable", "Premium", "Rugged", "Sleek",
			"Smart", "Sturdy", "Vintage", "Waterproof", "Wireless", "Foldable", "Minimalist", "Organic",
			"Professional", "Rustic", "Ultra-Thin", "Cozy", "Adjustable", "Eco-Friendly",
		},
		materials: []string{
			"Bamboo", "Steel", "Oak", "Walnut", "Cotton", "Linen", "Wool", "Leather", "Ceramic", "Glass",
			"Aluminum", "Copper", "Carbon", "Granite", "Marble", "Silicone", "Canvas", "Cork", "Titanium", "Rattan",
		},
		features: []string{
			"Ships within two business days.",
			"Backed by a two-year warranty.",
			"Designed to last for years of daily use.",
			"Easy to clean and simple to store.",
			"A customer favourite since its launch.",
			"Made in small batches with care.",
			"Comes gift-ready in recyclable packaging.",
			"Tested for quality before it leaves the warehouse.",
		},
		// Usernames and product names that make a JSON encoder work:
		// quotes, backslashes, control and line-separator characters,
		// HTML-sensitive text, non-Latin scripts and emoji. All valid UTF-8.
		oddUsernames: []string{
			`maria "mimi" schmidt`,
			`back\slash.bob`,
			"tab\there",
			"line\u2028separator",
			`<script>alert("hi")</script>`,
			"zoë.ümlaut",
			"日本.太郎",
			"party.🎉.time",
			`o'brien & sons`,
			"josé.garcía",
		},
		oddProducts: []string{
			`12" Cast Iron Skillet`,
			`Café Crème Mug`,
			`Back\Slash Wall Poster`,
			`"Quoted" Notebook <A5>`,
			"Tab\tSeparated Spice Rack",
			"日本製 Chef's Knife",
			"Zoë's Ümlaut Umbrella ☂",
			"Line\u2028Break Lamp",
		},
	}
}

// names builds name entries from display spellings.
func names(display ...string) []name {
	out := make([]name, len(display))
	for i, d := range display {
		lower := strings.ToLower(strings.ReplaceAll(d, " ", ""))
		out[i] = name{lower: lower, ascii: foldASCII(lower)}
	}
	return out
}

// foldASCII maps the accented letters used in the name lists to ASCII and
// drops anything else that is not a lower-case letter (the apostrophe of
// "o'brien"), which is what an e-mail local part of such a name looks like.
func foldASCII(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z':
			b.WriteRune(r)
		case strings.ContainsRune("áàâäãå", r):
			b.WriteByte('a')
		case strings.ContainsRune("éèêë", r):
			b.WriteByte('e')
		case strings.ContainsRune("íìîïı", r):
			b.WriteByte('i')
		case strings.ContainsRune("óòôöõø", r):
			b.WriteByte('o')
		case strings.ContainsRune("úùûü", r):
			b.WriteByte('u')
		case r == 'ñ' || r == 'ń':
			b.WriteByte('n')
		case r == 'ç' || r == 'č':
			b.WriteByte('c')
		case r == 'ş' || r == 'š' || r == 'ś':
			b.WriteByte('s')
		case r == 'ł':
			b.WriteByte('l')
		case r == 'ř':
			b.WriteByte('r')
		case r == 'ß':
			b.WriteString("ss")
		case r == 'ğ':
			b.WriteByte('g')
		case r == 'ž' || r == 'ż' || r == 'ź':
			b.WriteByte('z')
		case unicode.IsLetter(r):
			// An unmapped letter would make a non-ASCII address; the
			// lists are kept free of them (see TestVocabASCII).
			b.WriteRune(r)
		}
	}
	return b.String()
}
