// The virtual node's sun stands where NOAA's solar calculator puts it: the hardware and
// the simulator share one solar geometry (sunlight.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cosZenith, clearSkyGhi, Sun } from '../../hardware/virtual/sun.js';
import { sunAngles } from '../../sunlight.js';

const DEG = Math.PI / 180;

test('the virtual sun: the NREL SPA worked example (Golden, 17 Oct 2003 12:30:30 at −7), elevation 39.872046° ±0.03°', () => {
  // Reda & Andreas (2004), Table A5.1: topocentric elevation before refraction e₀ = 39.872046°.
  const elevation = Math.asin(cosZenith(Date.UTC(2003, 9, 17, 19, 30, 30), 39.742476, -105.1786)) / DEG;
  assert.ok(Math.abs(elevation - 39.872046) < 0.03, `elevation ${elevation}`);
});

test('the virtual sun: NOAA spreadsheet sunrise at 40° N 105° W on 21 June 2010 (04:31:16 at −7, 11.521229 h UTC) ±2 min', () => {
  // The clear sky lights up when the geometric centre clears the horizon, 0.833° after
  // NOAA's sunrise of the upper limb on a refracted horizon. The sun climbs at
  // 15°/h · cos φ · cos δ · sin H₀ = 15 · 0.766 · 0.9175 · sin 112.61° = 9.73°/h, so
  // 0.833° takes 5.1 min.
  const day = Date.UTC(2010, 5, 21);
  let lit = -1;
  for (let s = 10 * 3600; s < 13 * 3600; s += 5) {
    if (clearSkyGhi(day + s * 1000, 40, -105) > 0) { lit = s / 3600; break; }
  }
  const minutesAfterNoaa = (lit - 11.521229) * 60;
  assert.ok(minutesAfterNoaa > 5.1 - 2 && minutesAfterNoaa < 5.1 + 2, `first light ${minutesAfterNoaa.toFixed(2)} min after NOAA's sunrise`);
});

test('the virtual sun and the simulator agree on where the sun is, to the last digit', () => {
  for (let h = 0; h < 48; h++) {
    const t = Date.UTC(2026, 2, 1) + h * 3_600_000 * 91.3;
    const shared = Math.sin(sunAngles(t, 52.5, 13.4).elevationDeg * DEG);
    assert.ok(Math.abs(cosZenith(t, 52.5, 13.4) - shared) < 1e-12);
  }
  const sun = new Sun({ latitudeDeg: 40, longitudeDeg: -105, clouds: { seed: 1, meanCover: 0, sdCover: 0, correlationMinutes: 60 } }, 0);
  const noon = Date.UTC(2010, 5, 21, 19, 1, 43);
  assert.equal(sun.irradianceAt(noon).clearSkyWm2, clearSkyGhi(noon, 40, -105));
});
