// The side-panel forms: the fields of a kind, options from the API, changes
// written to the node's config, JSON checked, server errors on their field.
import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen } from "@testing-library/react";
import NodeForm from "../src/components/NodeForm";
import { I18nProvider } from "../src/i18n";
import { NODE_FIELDS, fieldOfError, setPath } from "../src/journey/fields";
import { PALETTE, displayKind } from "../src/journey/graph";

const options = { channels: ["sms", "push", "wecom"], templates: ["sip_intro", "fund_material"], journeys: ["other"] };

function renderForm(kind: string, config: Record<string, unknown>, errors: { node?: string; field?: string; message: string }[] = [], lang: "zh-CN" | "en" = "en") {
  const onChange = vi.fn();
  const view = render(
    <I18nProvider lang={lang}>
      <NodeForm nodeId="n1" kind={kind} config={config as never} onChange={onChange} options={options} errors={errors} />
    </I18nProvider>,
  );
  return { onChange, view };
}

afterEach(cleanup);

describe("node forms", () => {
  it("every palette kind has a form", () => {
    for (const p of PALETTE) expect(NODE_FIELDS[p.kind], p.kind).toBeDefined();
    for (const p of PALETTE.filter((x) => x.type === "wait")) expect(displayKind("wait", p.init)).toBe(p.kind);
  });

  it("send: channel and template come from the API's lists", () => {
    const { onChange } = renderForm("send", { channel: "sms", template: "" });
    const channel = screen.getByLabelText(/Channel/) as HTMLSelectElement;
    expect([...channel.options].map((o) => o.value)).toEqual(["", "sms", "push", "wecom"]);
    expect(channel.value).toBe("sms");
    fireEvent.change(channel, { target: { value: "push" } });
    expect(onChange).toHaveBeenLastCalledWith({ channel: "push", template: "" });
    const template = screen.getByLabelText(/Template/) as HTMLSelectElement;
    fireEvent.change(template, { target: { value: "sip_intro" } });
    expect(onChange).toHaveBeenLastCalledWith({ channel: "sms", template: "sip_intro" });
  });

  it("wait until a time: nested fields and the weekday list", () => {
    const { onChange } = renderForm("wait_time", { until: { time: "09:30" } });
    fireEvent.change(screen.getByLabelText(/Weekdays/), { target: { value: "mon, tue" } });
    expect(onChange).toHaveBeenLastCalledWith({ until: { time: "09:30", weekdays: ["mon", "tue"] } });
    fireEvent.change(screen.getByLabelText(/Time HH:MM/), { target: { value: "10:00" } });
    expect(onChange).toHaveBeenLastCalledWith({ until: { time: "10:00" } });
  });

  it("condition: JSON is parsed on blur, bad JSON is shown and not written", () => {
    const { onChange } = renderForm("condition", { if: { profile: "risk_level", op: ">=", value: "C3" } });
    const box = screen.getByLabelText(/Condition/) as HTMLTextAreaElement;
    fireEvent.change(box, { target: { value: "{bad" } });
    fireEvent.blur(box);
    expect(onChange).not.toHaveBeenCalled();
    expect(screen.getByText(/Invalid JSON/)).toBeTruthy();
    fireEvent.change(box, { target: { value: '{"tag":"tier","op":"=","value":"x"}' } });
    fireEvent.blur(box);
    expect(onChange).toHaveBeenLastCalledWith({ if: { tag: "tier", op: "=", value: "x" } });
  });

  it("advisor task: priority options are translated", () => {
    renderForm("advisor_task", { queue: "wealth", sla: "1d", script: "x" }, [], "zh-CN");
    const prio = screen.getByLabelText(/优先级/) as HTMLSelectElement;
    expect([...prio.options].map((o) => o.textContent)).toEqual(["请选择", "紧急", "高", "普通", "低"]);
  });

  it("server errors are shown next to the field they name", () => {
    renderForm("send", { channel: "fax", template: "" }, [
      { node: "n1", field: "channel", message: "unknown channel 'fax'" },
      { node: "n1", field: "next", message: "required" },
    ]);
    const field = document.querySelector('[data-field="channel"]')!;
    expect(field.classList.contains("has-error")).toBe(true);
    expect(field.textContent).toContain("unknown channel 'fax'");
    // an error on a field the form does not show is listed for the node
    expect(screen.getByText("next: required")).toBeTruthy();
  });

  it("field helpers", () => {
    expect(setPath({ until: { time: "1" } }, "until.time", undefined)).toEqual({});
    expect(fieldOfError(NODE_FIELDS.wait_time, "until.time")).toBe("until.time");
    expect(fieldOfError(NODE_FIELDS.wait_event, "where.all[0]")).toBe("where");
    expect(fieldOfError(NODE_FIELDS.send, "next")).toBeNull();
  });
});
