// journey <-> graph: every example journey survives the round trip with the
// same semantics, and positions survive a second trip.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ENTRY_ID, graphToJourney, journeyToGraph, semantics, targetHandles, type Journey } from "../src/journey/graph";

const dir = join(__dirname, "..", "..", "examples", "journeys");
const files = readdirSync(dir).filter((f) => f.endsWith(".json")).sort();

describe("journey <-> graph", () => {
  it("finds the example journeys", () => {
    expect(files.length).toBeGreaterThanOrEqual(8);
  });

  for (const f of files) {
    it(`round trip of ${f}`, () => {
      const def = JSON.parse(readFileSync(join(dir, f), "utf8")) as Journey;
      const g = journeyToGraph(def);
      // one graph node per definition node plus the entry
      expect(g.nodes.length).toBe(def.nodes.length + 1);
      // every edge leaves a handle its node has and ends at a node
      const ids = new Set(g.nodes.map((n) => n.id));
      for (const e of g.edges) {
        const src = g.nodes.find((n) => n.id === e.source)!;
        expect(targetHandles(src.data.kind, src.data.config)).toContain(e.sourceHandle);
        expect(ids.has(e.target)).toBe(true);
      }
      const back = graphToJourney(g);
      expect(semantics(back)).toEqual(semantics(def));
      // positions go into ui and come back
      const again = journeyToGraph(back);
      expect(again.nodes.map((n) => [n.id, n.position])).toEqual(g.nodes.map((n) => [n.id, { x: Math.round(n.position.x), y: Math.round(n.position.y) }]));
      expect(semantics(graphToJourney(again))).toEqual(semantics(def));
    });
  }

  it("keeps an explicit start and drops a dangling target", () => {
    const def: Journey = {
      key: "t",
      name: "t",
      entry: { api: true },
      start: "b",
      nodes: [
        { id: "a", type: "exit" },
        { id: "b", type: "send", channel: "push", template: "x", next: "a" },
      ],
    };
    const g = journeyToGraph(def);
    expect(g.edges.find((e) => e.source === ENTRY_ID)!.target).toBe("b");
    expect(semantics(graphToJourney(g))).toEqual(semantics(def));
    const cut = { ...g, edges: g.edges.filter((e) => e.source !== "b") };
    const out = graphToJourney(cut);
    expect(out.nodes.find((n) => n.id === "b")!.next).toBeUndefined();
  });

  it("maps arms to handles and back", () => {
    const def: Journey = {
      key: "s",
      name: "s",
      entry: { api: true },
      nodes: [
        { id: "ab", type: "split", arms: [{ name: "A", percent: 90, next: "x" }, { name: "C", percent: 10, control: true, next: "y" }] },
        { id: "x", type: "exit" },
        { id: "y", type: "exit" },
      ],
    };
    const g = journeyToGraph(def);
    expect(g.edges.filter((e) => e.source === "ab").map((e) => e.sourceHandle)).toEqual(["arm:0", "arm:1"]);
    expect(g.nodes[1].data.config.arms).toEqual([{ name: "A", percent: 90 }, { name: "C", percent: 10, control: true }]);
    expect(semantics(graphToJourney(g))).toEqual(semantics(def));
  });
});
