// validate.js reads Adaptive Cards with Microsoft's own Adaptive Cards library (the adaptivecards
// npm package) and prints what the library finds wrong with each, for TestTeamsCardsReadByAdaptiveCards.
//
//   node validate.js <the package's dist/adaptivecards.js>  <cards.json  >problems.json
//
// stdin is a JSON object of cards by name; stdout is a JSON object of the same names, each with
// the list of problems of that card (empty when the library reads the card as it was written).
//
// Three sources of problems, all the library's:
//   - parse events: an unknown element or action type, an enum value the library does not know, a
//     property newer than the card's own version (the card is read at the version it declares);
//   - validation events (AdaptiveCard.validateProperties): the card's type, an unsupported version;
//   - the round trip: the library writes the card back as it understood it, and every property of
//     the input is looked up in the library's schema of its object. A property the schema does not
//     name (misspelt, or a host extension), one whose value the library did not read (a string
//     for a boolean), or one the library had to fill in (a card without type or version) is a
//     problem: a renderer built on this library shows the card without it.
"use strict";

// The bundle is a browser build (UMD) that looks for window when it loads; it renders nothing here.
globalThis.window = globalThis;
const AC = require(process.argv[2]);

// Properties that hold elements or actions are read by the containers' own code, not through
// their schema.
const collections = { body: "elements", items: "elements", columns: "elements", actions: "actions" };

function validate(input) {
	const problems = [];
	const version = AC.Version.parse(input.version, new AC.SerializationContext());
	const target = version && version.isValid ? version : AC.Versions.latest;
	const card = new AC.AdaptiveCard();
	const parse = new AC.SerializationContext(target);
	card.parse(input, parse);
	for (let i = 0; i < parse.eventCount; i++) {
		problems.push(describe(parse.getEventAt(i)));
	}
	for (const e of card.validateProperties().validationEvents) {
		problems.push(describe(e));
	}
	const output = card.toJSON(new AC.SerializationContext(target));
	compare(input, output, card, "card", problems);
	return problems;
}

function describe(e) {
	return `${AC.ValidationPhase[e.phase]} ${AC.ValidationEvent[e.event]}: ${e.message}`;
}

// compare checks that output, the library's writing of the object obj read from input, holds
// every property of input, and nothing that input lacks but $schema, which the library always
// writes and no card needs.
function compare(input, output, obj, path, problems) {
	for (const [key, value] of Object.entries(input)) {
		const at = `${path}.${key}`;
		if (key in collections) {
			compareItems(value, output[key], collections[key], at, problems);
			continue;
		}
		const p = findProperty(obj.getSchema(), key);
		if (!p) {
			problems.push(`${at}: ${typeName(obj)} has no property "${key}"`);
		} else if (!(key in output)) {
			if (!isDefault(p, value)) {
				problems.push(`${at}: the library did not read ${JSON.stringify(value)}`);
			}
		} else if (p.objectType && Array.isArray(value)) {
			const items = Array.isArray(output[key]) ? output[key] : [];
			value.forEach((v, i) => compare(v, items[i] || {}, new p.objectType(), `${at}[${i}]`, problems));
		} else if (!same(value, output[key])) {
			problems.push(`${at}: the library read ${JSON.stringify(value)} as ${JSON.stringify(output[key])}`);
		}
	}
	for (const key of Object.keys(output)) {
		if (!(key in input) && key !== "$schema") {
			problems.push(`${path}.${key}: missing; the library filled in ${JSON.stringify(output[key])}`);
		}
	}
}

// compareItems compares the elements (or actions) of a container one by one; an item the library
// dropped is already a parse event, so the items are compared only while both lists agree.
function compareItems(input, output, registry, path, problems) {
	if (Array.isArray(input) && input.length === 0 && output === undefined) {
		return;
	}
	if (!Array.isArray(input) || !Array.isArray(output) || input.length !== output.length) {
		problems.push(`${path}: the library read ${count(input)} as ${count(output)}`);
		return;
	}
	const reg = registry === "elements" ? AC.GlobalRegistry.elements : AC.GlobalRegistry.actions;
	input.forEach((item, i) => {
		const obj = reg.createInstance(item.type, AC.Versions.latest);
		if (obj) {
			compare(item, output[i], obj, `${path}[${i}]`, problems);
		}
	});
}

function typeName(obj) {
	return typeof obj.getJsonTypeName === "function" ? obj.getJsonTypeName() : obj.constructor.name;
}

function findProperty(schema, name) {
	for (let i = 0; i < schema.getCount(); i++) {
		if (schema.getItemAt(i).name === name) {
			return schema.getItemAt(i);
		}
	}
	return undefined;
}

function count(v) {
	if (v === undefined) {
		return "nothing";
	}
	return Array.isArray(v) ? `${v.length} item${v.length === 1 ? "" : "s"}` : JSON.stringify(v);
}

// isDefault tells whether value is the property's default, which the library leaves out when it
// writes a card.
function isDefault(p, value) {
	if (Array.isArray(value) && value.length === 0) {
		return true;
	}
	let d = p.defaultValue;
	if (p.enumType && typeof d === "number") {
		d = p.enumType[d];
	}
	return d !== undefined && same(value, d);
}

// same compares JSON values; enum values are names the spec reads in any case ("bolder" is
// "Bolder"), and the library writes them in its own.
function same(a, b) {
	if (typeof a === "string" && typeof b === "string") {
		return a.toLowerCase() === b.toLowerCase();
	}
	return JSON.stringify(a) === JSON.stringify(b);
}

let text = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => (text += chunk));
process.stdin.on("end", () => {
	const result = {};
	for (const [name, card] of Object.entries(JSON.parse(text))) {
		try {
			result[name] = validate(card);
		} catch (err) {
			result[name] = [`the library failed on the card: ${err.message}`];
		}
	}
	process.stdout.write(JSON.stringify(result));
});
