// A plain table of rows with the empty state; columns name a cell renderer.
import type { ReactNode } from "react";
import { Empty } from "./State";

export type Column<T> = { head: ReactNode; cell: (row: T) => ReactNode; num?: boolean };

export default function Table<T>({ rows, columns, rowKey, testId }: { rows: T[]; columns: Column<T>[]; rowKey: (row: T, i: number) => string; testId?: string }) {
  if (!rows.length) return <Empty />;
  return (
    <table className="table" data-testid={testId}>
      <thead>
        <tr>
          {columns.map((c, i) => (
            <th key={i} className={c.num ? "num" : undefined}>
              {c.head}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>
        {rows.map((r, i) => (
          <tr key={rowKey(r, i)}>
            {columns.map((c, j) => (
              <td key={j} className={c.num ? "num" : undefined}>
                {c.cell(r)}
              </td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}
