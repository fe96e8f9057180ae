-- A partition policy that forgets decide.
return { name = "no-decide" }
